#!/usr/bin/env bash
# Debian packages the test suite uses, installed only when missing (CI runs as root):
#   chromium     the headless browser of the dashboard tests (driven by Playwright, never downloaded)
#   nginx-light  the TLS proxy of the deployment tests (tests/deploy)
# One package a line in PACKAGES; without apt-get or root it says so and the tests that need
# a package skip with a reason.
set -u
PACKAGES=(
  chromium
  nginx-light
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "system_packages: cannot install ${missing[*]} (no apt-get or not root); their tests skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" \
  || echo "system_packages: installing ${missing[*]} failed; their tests skip" >&2
exit 0
