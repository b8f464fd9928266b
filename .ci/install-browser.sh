#!/usr/bin/env bash
# Install what the browser end-to-end test needs, only when missing:
# Debian's `chromium` (the browser binary, /usr/bin/chromium) and the Python
# `playwright` package that drives it. Never runs `playwright install`, which
# downloads its own browser build from the internet.
# Usage: .ci/install-browser.sh   (inside the activated virtual environment)
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if ! python -c "import playwright" >/dev/null 2>&1; then
    python -m pip install -q "playwright>=1.40,<2"
fi

echo "browser: $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
