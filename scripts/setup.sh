#!/usr/bin/env bash
# One-time set-up used by both README commands (idempotent): system libraries for headless
# rendering, then wildamp with its notebook and test extras into the current Python.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
APT_PKGS="libegl1 libgl1-mesa-dri libosmesa6"
missing=$(for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done || true)
if [ -n "$missing" ] && command -v dpkg >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "wildamp set-up: headless rendering needs these system packages: $missing" >&2
    echo "  run:  sudo apt-get install -y $missing" >&2
    exit 1
  fi
fi
# ffmpeg comes from the imageio-ffmpeg wheel (<0.8, whose ffmpeg works with mediapy).
"$PY" -m pip install -q --disable-pip-version-check -e ".[notebooks,test]"
