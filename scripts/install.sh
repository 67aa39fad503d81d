#!/usr/bin/env bash
# Installs everything hsm-lifecycle needs on a Debian 12 machine, then the project itself into a
# virtual environment in the checkout (.venv): its command is then .venv/bin/hsm-lifecycle.
#
# Debian packages:
#   runtime  pcscd, vsmartcard-vpcd, OpenSC (PC/SC tests, real tokens), graphviz (the diagram),
#            Chromium (the report check), iproute2 (scripts/test.sh's private loopback)
#   build    pyscard comes from the package index as a source distribution only (no Linux
#            wheel), so its build needs a C compiler (build-essential), swig, pkg-config,
#            libpcsclite-dev (winscard.h) and the Python headers (python3-dev). pyscard's own
#            build requirements also fetch a swig wheel where the index has one; Debian's swig
#            covers the other platforms and builds without isolation.
#   python   python3-venv (Debian's python3 has no ensurepip without it).
# The other dependencies (cryptography, cffi, hypothesis, transitions, graphviz, pytest,
# pytest-xdist, aalpy, rich) come as wheels for Python 3.11 on amd64 and arm64; building
# cryptography from source would need a newer Rust than Debian 12 ships, so we rely on its wheels.
# The optional `fuzz` extra (atheris) needs clang and libFuzzer and is not installed here.
#
# Before pip runs, every build dependency is checked: a missing one stops the script with one
# sentence naming the package and the command that installs it (never a compiler's traceback).
#
#   bash scripts/install.sh                 Debian packages, then .venv with the project
#   bash scripts/install.sh --system-only   Debian packages and the check only (scripts/test.sh)
# PYTHON picks the interpreter (default python3, 3.11 or newer); HSM_VENV the venv (default .venv).
# Idempotent: a second run checks and returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME_PACKAGES=(pcscd vsmartcard-vpcd opensc graphviz chromium iproute2)
BUILD_PACKAGES=(build-essential swig pkg-config libpcsclite-dev)
PYTHON=${PYTHON:-python3}
VENV=${HSM_VENV:-.venv}

say() { echo "install.sh: $*" >&2; }

system_only=""
case "${1:-}" in
  "") ;;
  --system-only) system_only=1 ;;
  *) say "unknown option '$1': use no option, or --system-only"; exit 2 ;;
esac

if ! command -v "$PYTHON" >/dev/null; then
  say "there is no $PYTHON: install Python 3.11 or newer with \`sudo apt-get install python3\`."
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "$PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); hsm-lifecycle needs 3.11 or newer (Debian 12's python3 is 3.11)."
  exit 1
fi
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# Debian's own python needs Debian's packages for venv and headers; another python (pyenv, a
# build of one's own) brings its own or is told so by the check below.
debian_python=""
[ "$("$PYTHON" -c 'import sys; print(sys.base_prefix)')" = /usr ] && debian_python=1

has_venv() { "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; }
has_headers() { [ -e "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; }

wanted=("${RUNTIME_PACKAGES[@]}" "${BUILD_PACKAGES[@]}")
if [ -n "$debian_python" ]; then
  has_venv || wanted+=("python$pyver-venv")
  has_headers || wanted+=("python$pyver-dev")
fi

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      say "the Debian packages ${missing[*]} are missing and installing them needs root: run \`apt-get install -y ${missing[*]}\` as root, then this script again."
      exit 1
    fi
    SUDO="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# What building pyscard from source needs, checked by what the build uses (not by package
# name), so an incomplete package list above fails here with one sentence.
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v swig >/dev/null || need+=(swig)
command -v pkg-config >/dev/null || need+=(pkg-config)
{ pkg-config --exists libpcsclite 2>/dev/null && [ -e "$(pkg-config --variable=includedir libpcsclite)/PCSC/winscard.h" ]; } ||
  [ -e /usr/include/PCSC/winscard.h ] || need+=(libpcsclite-dev)
if ((${#need[@]})); then
  verb="is"; ((${#need[@]} > 1)) && verb="are"
  say "building pyscard from source needs ${need[*]}, which $verb not installed: run \`sudo apt-get install -y ${need[*]}\`, then this script again."
  exit 1
fi
if ! has_headers; then
  if [ -n "$debian_python" ]; then
    say "building pyscard needs Python's C headers (Python.h), which are not installed: run \`sudo apt-get install -y python$pyver-dev\`, then this script again."
  else
    say "$PYTHON has no C headers (Python.h) to build pyscard with: use Debian's python3 (PYTHON=/usr/bin/python3) or a Python installed with its headers."
  fi
  exit 1
fi
if ! has_venv; then
  if [ -n "$debian_python" ]; then
    say "$PYTHON cannot make a virtual environment: run \`sudo apt-get install -y python$pyver-venv\`, then this script again."
  else
    say "$PYTHON cannot make a virtual environment (no ensurepip): use Debian's python3 (PYTHON=/usr/bin/python3) with python3-venv."
  fi
  exit 1
fi

[ -n "$system_only" ] && exit 0

# The project, editable, in its own venv: Debian's python refuses `pip install` outside one
# (PEP 668). The stamp skips pip while pyproject.toml and the interpreter stay the same.
stamp="$VENV/.hsm-lifecycle-installed"
want_stamp="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version)' | head -n1)"
if [ -x "$VENV/bin/hsm-lifecycle" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ] &&
  "$VENV/bin/python" -c 'import hsm_lifecycle.conformance.cli, smartcard.scard' 2>/dev/null; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
log=$(mktemp "${TMPDIR:-/tmp}/hsm-lifecycle-install.XXXXXX")
echo "installing hsm-lifecycle and its Python dependencies into $VENV (pyscard is built from source)"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e . >"$log" 2>&1; then
  grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 25 >&2
  say "pip could not install the project (its whole output: $log)."
  exit 1
fi
rm -f "$log"
if ! "$VENV/bin/python" -c 'import hsm_lifecycle.conformance.cli, smartcard.scard'; then
  say "the project installed but does not import: see the error above."
  exit 1
fi
echo "$want_stamp" >"$stamp"
echo "installed: run $VENV/bin/hsm-lifecycle (or \`source $VENV/bin/activate\` and then hsm-lifecycle)"
