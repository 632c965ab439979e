#!/usr/bin/env bash
# Set up dpde on a fresh machine: system package check, a virtual environment, the package.
# Usage: scripts/setup.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "setup: dpde needs Python >= 3.10 (found: $("$python" --version 2>&1))" >&2
    exit 1
fi

# Open3D's wheels link libusb-1.0 (ImportError: libusb-1.0.so.0 without it).
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1\.0\.so\.0'; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "setup: installing libusb-1.0-0 (needed by Open3D)" >&2
        apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null
    elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then
        echo "setup: installing libusb-1.0-0 (needed by Open3D) with sudo" >&2
        sudo apt-get update -qq && sudo apt-get install -y -qq libusb-1.0-0 >/dev/null
    else
        echo "setup: Open3D needs the system library libusb-1.0 (Debian/Ubuntu: apt-get install" \
             "libusb-1.0-0; Fedora: dnf install libusb1; macOS: brew install libusb). Install it" \
             "and run this again." >&2
        exit 1
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
# torch from the registry: its torchvision wheels need the registry's torch build.
"$venv/bin/python" -m pip install -q -e '.[dev]'
"$venv/bin/python" -c 'import open3d, torch, torchvision, dpde_cli' \
    || { echo "setup: the installed packages do not import; see the messages above" >&2; exit 1; }
echo "setup: done ($venv, torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)'))" >&2
