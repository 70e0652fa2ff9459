#!/bin/sh
# The image's install step (deploy/Containerfile), run outside a container as well by
# tests/deploy/test_image_commands.py, so that both run the same commands. From the build
# context: a virtualenv at $1 holding the locked server dependencies (requirements/server.txt),
# each checked against its hash, then the project itself without resolving anything again.
set -eu
venv="$1"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --require-hashes -r requirements/server.txt
"$venv/bin/pip" install --no-deps .
