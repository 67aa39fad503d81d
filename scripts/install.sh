#!/usr/bin/env bash
# Installs everything hsm-lifecycle needs on a Debian machine: Debian's PC/SC stack, vsmartcard's
# vpcd driver, OpenSC, graphviz and Chromium (for the report check), then this project and its
# Python dependencies (pyproject.toml) in editable mode. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pcscd vsmartcard-vpcd opensc graphviz chromium)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install -q --disable-pip-version-check -e . 2>&1 | grep -v -E "^WARNING: (Running pip as|Location)" || true
"$PYTHON" -c "import conformance, emulator, model" 2>/dev/null || {
  echo "install.sh: the project did not install; see the pip output above" >&2; exit 1; }
