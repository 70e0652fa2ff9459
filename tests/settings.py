"""Settings for the test suite: the project's settings in development mode."""

import os

os.environ.setdefault("GATEWAY_DEV_MODE", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from inference_gateway.settings import *  # noqa: F403
