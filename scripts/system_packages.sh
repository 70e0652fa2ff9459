#!/bin/sh
# Debian packages the tests start for real (nginx for tests/deploy). Installed only when missing,
# and only where apt-get can run as root; otherwise the tests that need them skip with a reason.
set -u
PACKAGES="nginx-light"

missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system_packages: missing$missing (not root or no apt-get); their tests will skip" >&2
    exit 0
fi
apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing \
    || echo "system_packages: could not install$missing; their tests will skip" >&2
exit 0
