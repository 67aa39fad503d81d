#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need, starts pcscd
# with vsmartcard's vpcd driver for the PC/SC tests, runs pytest, and stops what it started.
# Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh || exit 1

started_pcscd=""
if [ -x scripts/pcscd.sh ]; then
  # shellcheck disable=SC1091
  source scripts/pcscd.sh
  pcscd_start && started_pcscd=1
fi
cleanup() { [ -n "$started_pcscd" ] && pcscd_stop; }
trap cleanup EXIT

python3 -m pytest "$@"
rc=$?
# pytest's exit status 5 means "no tests collected": a selection that matched nothing is not
# a failure of the project, but say so loudly.
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests for this selection" >&2
  rc=0
fi
exit "$rc"
