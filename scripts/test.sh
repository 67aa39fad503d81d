#!/usr/bin/env bash
# The project's test command (README, .ci/run). Extra arguments go to pytest.
#
# 1. scripts/install.sh --system-only: the Debian packages, and every build dependency checked
#    (a missing one is one sentence, not a compiler's traceback).
# 2. Builds the project as a new machine would: pip's cache off and pyscard from source
#    (--no-binary pyscard), once, into a temporary wheelhouse with every dependency and the
#    project's own wheel. A missing build dependency fails here on any machine, even one where
#    pyscard is already installed system-wide.
# 3. Two new virtual environments from that wheelhouse: the checkout installed editable (the
#    tests run there, its bin/ first on PATH for the `hsm-lifecycle` command), and the project's
#    wheel alone (tests/packaging get it as HSM_WHEEL_VENV).
# 4. Runs pytest in private mount and network namespaces (unshare): its own /run/pcscd (tmpfs),
#    its own loopback and its own pcscd with vpcd readers (scripts/pcscd.sh), so a system pcscd
#    (Debian's socket-activated one has two readers) or a second test run never interferes.
#    Not root: a user namespace maps us to root in there (unshare --user --map-root-user).
set -uo pipefail
cd "$(dirname "$0")/.."

say() { echo "scripts/test.sh: $*" >&2; }

# -- step 4, inside the namespaces ------------------------------------------------------------
if [ "${1:-}" = "--in-namespace" ]; then
  shift
  if [ -d /run/pcscd ]; then
    mount -t tmpfs -o mode=0755 tmpfs /run/pcscd || exit 1
  else  # not root and no /run/pcscd to cover: a private /run
    mount -t tmpfs -o mode=0755 tmpfs /run && mkdir /run/pcscd || exit 1
  fi
  ip link set lo up || exit 1
  # vpcd port leases and temporary files stay with this run (its ports are its own now).
  export HSM_VPCD_LEASE_DIR="$HSM_TEST_DIR/leases" TMPDIR="$HSM_TEST_DIR/tmp"
  mkdir -p "$TMPDIR"
  export PATH="$HSM_TEST_VENV/bin:$PATH" PYTHON="$HSM_TEST_VENV/bin/python"
  # shellcheck disable=SC1091
  source scripts/pcscd.sh
  pcscd_start || { say "the private pcscd did not start (see above)"; exit 1; }
  trap pcscd_stop EXIT
  # One worker per core, at least 2 and at most 4 (the tests that need OpenSC's PKCS#11 module
  # share its first 4 readers); HSM_TEST_WORKERS=N overrides, 0 runs in one process. Arguments
  # after it (-n 0, -x, paths) still win.
  cores=$(nproc 2>/dev/null || echo 2)
  workers=$(( cores < 2 ? 2 : (cores > 4 ? 4 : cores) ))
  "$PYTHON" -m pytest -n "${HSM_TEST_WORKERS:-$workers}" "$@"
  rc=$?
  # pytest's exit status 5 means "no tests collected": a selection that matched nothing is not
  # a failure of the project, but say so loudly.
  if [ "$rc" -eq 5 ]; then
    say "pytest collected no tests for this selection"
    rc=0
  fi
  exit "$rc"
fi

# -- steps 1-3 ----------------------------------------------------------------------------------
bash scripts/install.sh --system-only || exit 1

PYTHON=${PYTHON:-python3}
# A short name: the tests' Unix sockets (the portal's) live below it, and AF_UNIX paths stop at 107 bytes.
HSM_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hlt.XXXXXX") || exit 1
trap 'rm -rf "$HSM_TEST_DIR"' EXIT
export HSM_TEST_DIR HSM_TEST_VENV="$HSM_TEST_DIR/venv" HSM_WHEEL_VENV="$HSM_TEST_DIR/wheel-venv"
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
wheels="$HSM_TEST_DIR/wheels"

# Runs pip quietly; on failure shows the end of its output (minus this machine's index notes).
pip_step() {
  local what=$1 log="$HSM_TEST_DIR/pip.log"
  shift
  if ! "$@" >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 25 >&2
    say "$what failed (pip's output above)"
    exit 1
  fi
}

t0=$SECONDS
echo "scripts/test.sh: building the project and its dependencies (pyscard from source, no pip cache)"
"$PYTHON" -m venv "$HSM_TEST_VENV" || exit 1
pip_step "building the wheels" "$HSM_TEST_VENV/bin/pip" wheel --no-binary pyscard -w "$wheels" . "setuptools>=68" wheel
pip_step "installing the checkout" "$HSM_TEST_VENV/bin/pip" install --no-index --find-links "$wheels" -e .
"$PYTHON" -m venv "$HSM_WHEEL_VENV" || exit 1
pip_step "installing the wheel" "$HSM_WHEEL_VENV/bin/pip" install --no-index --find-links "$wheels" hsm-lifecycle
echo "scripts/test.sh: built in $((SECONDS - t0)) s; running pytest with a private pcscd"

if [ "$(id -u)" -eq 0 ]; then
  mkdir -p /run/pcscd
  namespaces=(unshare --mount --net)
else
  namespaces=(unshare --user --map-root-user --mount --net)
fi
if ! "${namespaces[@]}" true 2>/dev/null; then
  say "cannot make private namespaces here (\`${namespaces[*]}\` failed): run as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)."
  exit 1
fi
"${namespaces[@]}" bash scripts/test.sh --in-namespace "$@"
exit $?
