#!/usr/bin/env bash
# pcscd with vsmartcard's vpcd readers for the PC/SC tests. Sourced by scripts/test.sh:
#   source scripts/pcscd.sh; pcscd_start && ...; pcscd_stop
# or run directly for a manual session:  bash scripts/pcscd.sh start|stop|status
#
# scripts/test.sh calls it in private mount and network namespaces (its own /run/pcscd and
# loopback), where no other pcscd can answer: each test run gets its own.
#
# pcscd_start: if a pcscd already answers (system service, socket activation, a manual session),
# it is reused as it is and never stopped by us. Otherwise Debian's pcscd is started in the
# background (no systemd needed) with a private reader.conf.d offering HSM_VPCD_INSTANCES
# (default 4) vpcd driver instances of two readers each: ports 35963..35970. One vpcd driver
# library keeps its sockets in per-slot globals, so every extra instance loads its own copy
# of the library (pcscd and the dynamic loader share one copy per file otherwise).
# Exports for the tests: HSM_PCSCD=1, HSM_VPCD_READERS ("PORT=READER;..."), and
# HSM_PCSCD_LOG when we started it. (Port leases live machine-wide in $TMPDIR/hsm-lifecycle-vpcd.)
# pcscd_stop stops only a pcscd that pcscd_start started, and removes its private files.
# pcscd has one fixed socket (/run/pcscd/pcscd.comm): one pcscd per mount namespace, so root
# (or a user namespace's root) is needed.

_HSM_VPCD_BASE_PORT=35963
_HSM_PCSCD_SOCKET=/run/pcscd/pcscd.comm
_HSM_PCSCD_PIDFILE=/run/pcscd/pcscd.pid
_HSM_VPCD_LIB=/usr/lib/pcsc/drivers/serial/libifdvpcd.so

_hsm_pcscd_say() { echo "pcscd.sh: $*" >&2; }
# A python with pyscard: $PYTHON, else install.sh's venv in this checkout, else python3.
_HSM_PCSCD_VENV_PYTHON="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python"
_hsm_pcscd_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x "$_HSM_PCSCD_VENV_PYTHON" ]; then echo "$_HSM_PCSCD_VENV_PYTHON"
  else echo python3
  fi
}

# Prints the readers pcscd offers, one a line. Exit 0: pcscd answers; 3: no pcscd.
_hsm_pcscd_readers() {
  "$(_hsm_pcscd_python)" - <<'EOF'
import sys
from smartcard import scard
rv, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
if rv != scard.SCARD_S_SUCCESS:
    sys.exit(3)
rv, readers = scard.SCardListReaders(ctx, [])
scard.SCardReleaseContext(ctx)
print("\n".join(readers if rv == scard.SCARD_S_SUCCESS else []))
EOF
}

# The reader name of each vpcd port, as "PORT=NAME;..." (pcscd names a reader
# "<FRIENDLYNAME> <instance> <slot>"; instance 0 keeps Debian's name "Virtual PCD").
_hsm_vpcd_reader_map() {
  local instances=$1 i slot name map=""
  for ((i = 0; i < instances; i++)); do
    name="Virtual PCD"
    ((i > 0)) && name="Virtual PCD $((_HSM_VPCD_BASE_PORT + 2 * i))"
    for slot in 0 1; do
      map+="$((_HSM_VPCD_BASE_PORT + 2 * i + slot))=$name 00 0$slot;"
    done
  done
  echo "${map%;}"
}

# Keeps only the map entries whose reader pcscd actually lists.
_hsm_vpcd_present() {
  local map=$1 readers=$2 entry out=""
  local IFS=';'
  for entry in $map; do
    grep -qxF "${entry#*=}" <<<"$readers" && out+="$entry;"
  done
  echo "${out%;}"
}

# A pcscd that died by SIGKILL leaves its pid file and socket behind; pcscd cleans them itself
# unless the pid is still a zombie (no init reaps it in some containers), which blocks it.
_hsm_pcscd_clear_stale() {
  local pid state
  [ -f "$_HSM_PCSCD_PIDFILE" ] || return 0
  pid=$(tr -d '\0\n ' <"$_HSM_PCSCD_PIDFILE")
  state=$(ps -o stat= -p "$pid" 2>/dev/null | tr -d ' ')
  if [ -z "$state" ] || [[ $state == Z* ]]; then
    rm -f "$_HSM_PCSCD_PIDFILE" "$_HSM_PCSCD_SOCKET"
  fi
}

_hsm_pcscd_export() {
  export HSM_PCSCD=1 HSM_VPCD_READERS="$1"
}

pcscd_start() {
  local readers rc map present instances=${HSM_VPCD_INSTANCES:-4} conf i lib t
  if [ -n "${_HSM_PCSCD_PID:-}" ] && kill -0 "$_HSM_PCSCD_PID" 2>/dev/null; then
    return 0  # started by an earlier call in this shell
  fi
  readers=$(_hsm_pcscd_readers 2>/dev/null); rc=$?
  if [ "$rc" -eq 0 ]; then
    present=$(_hsm_vpcd_present "$(_hsm_vpcd_reader_map "$instances")" "$readers")
    if [ -z "$present" ]; then
      _hsm_pcscd_say "a pcscd is already running without vpcd readers: the PC/SC tests will be skipped" \
        "(stop that pcscd, or install vsmartcard-vpcd and restart it)"
      return 1
    fi
    _hsm_pcscd_export "$present"
    _hsm_pcscd_say "reusing the running pcscd (vpcd readers: ${present//;/, })"
    return 0
  fi
  # A user's PATH may lack /usr/sbin, where Debian puts pcscd.
  local pcscd_bin
  pcscd_bin=$(PATH="$PATH:/usr/sbin:/sbin" command -v pcscd)
  if [ -z "$pcscd_bin" ] || [ ! -e "$_HSM_VPCD_LIB" ]; then
    _hsm_pcscd_say "pcscd or vsmartcard-vpcd is not installed: run scripts/install.sh; the PC/SC tests will be skipped"
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    _hsm_pcscd_say "starting pcscd needs root (its socket is $_HSM_PCSCD_SOCKET): run as root or start" \
      "pcscd yourself; the PC/SC tests will be skipped"
    return 1
  fi
  if ! [[ $instances =~ ^[1-8]$ ]]; then
    _hsm_pcscd_say "HSM_VPCD_INSTANCES must be 1..8 (pcscd allows 16 readers), not '$instances'"
    return 1
  fi
  _hsm_pcscd_clear_stale
  _HSM_PCSCD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hsm-pcscd.XXXXXX") || return 1
  conf="$_HSM_PCSCD_DIR/reader.conf.d"
  mkdir -p "$conf" "$_HSM_PCSCD_DIR/lib"
  for ((i = 0; i < instances; i++)); do
    lib=$_HSM_VPCD_LIB
    if ((i > 0)); then
      lib="$_HSM_PCSCD_DIR/lib/libifdvpcd-$i.so"
      cp "$_HSM_VPCD_LIB" "$lib"
    fi
    local name="Virtual PCD" channel=$((_HSM_VPCD_BASE_PORT + 2 * i))
    ((i > 0)) && name="Virtual PCD $channel"
    # One file, in order: pcscd reads a directory in readdir order.
    printf 'FRIENDLYNAME "%s"\nDEVICENAME /dev/null:%d\nLIBPATH %s\nCHANNELID %d\n\n' \
      "$name" "$channel" "$lib" "$channel" >>"$conf/vpcd"
  done
  local flags=(-f -c "$conf")
  [ -n "${HSM_PCSCD_DEBUG:-}" ] && flags+=(-d -a)
  HSM_PCSCD_LOG="$_HSM_PCSCD_DIR/pcscd.log"
  "$pcscd_bin" "${flags[@]}" >"$HSM_PCSCD_LOG" 2>&1 </dev/null &
  _HSM_PCSCD_PID=$!
  map=$(_hsm_vpcd_reader_map "$instances")
  for ((t = 0; t < 100; t++)); do
    if ! kill -0 "$_HSM_PCSCD_PID" 2>/dev/null; then
      _hsm_pcscd_say "pcscd exited at start: $(tail -n 2 "$HSM_PCSCD_LOG" | tr '\n' ' ')"
      wait "$_HSM_PCSCD_PID" 2>/dev/null
      rm -rf "$_HSM_PCSCD_DIR"; unset _HSM_PCSCD_PID _HSM_PCSCD_DIR HSM_PCSCD_LOG
      return 1
    fi
    if [ -S "$_HSM_PCSCD_SOCKET" ] && readers=$(_hsm_pcscd_readers 2>/dev/null); then
      break
    fi
    sleep 0.1
  done
  present=$(_hsm_vpcd_present "$map" "$readers")
  if [ -z "$present" ]; then
    _hsm_pcscd_say "pcscd started but offers no vpcd reader (see $HSM_PCSCD_LOG); the PC/SC tests will be skipped"
    pcscd_stop
    return 1
  fi
  [ "$present" != "$map" ] && _hsm_pcscd_say "only some vpcd readers came up (ports in use?): ${present//;/, }"
  export HSM_PCSCD_LOG
  _hsm_pcscd_export "$present"
  _hsm_pcscd_say "started pcscd (pid $_HSM_PCSCD_PID) with $(tr ';' '\n' <<<"$present" | wc -l) vpcd readers" \
    "from port $_HSM_VPCD_BASE_PORT; log: $HSM_PCSCD_LOG"
}

pcscd_stop() {
  local pid=${_HSM_PCSCD_PID:-} t
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null
    for ((t = 0; t < 50; t++)); do
      kill -0 "$pid" 2>/dev/null || break
      [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] && break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null  # reap it: a zombie with a pid file blocks the next pcscd
    _hsm_pcscd_clear_stale
  fi
  [ -n "${_HSM_PCSCD_DIR:-}" ] && rm -rf "$_HSM_PCSCD_DIR"
  if [ -n "$pid" ] || [ -n "${_HSM_PCSCD_DIR:-}" ]; then
    unset HSM_PCSCD HSM_VPCD_READERS HSM_PCSCD_LOG
  fi
  unset _HSM_PCSCD_PID _HSM_PCSCD_DIR
  return 0
}

# Direct use: `bash scripts/pcscd.sh start` keeps pcscd running in the foreground of this
# script until Ctrl-C, printing the exports to copy into another shell.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case "${1:-}" in
    start)
      pcscd_start || exit 1
      if [ -n "${_HSM_PCSCD_PID:-}" ]; then
        trap 'pcscd_stop; exit 0' INT TERM
        echo "export HSM_PCSCD=1 HSM_VPCD_READERS='$HSM_VPCD_READERS'"
        echo "pcscd runs until Ctrl-C"
        wait "$_HSM_PCSCD_PID"
      fi
      ;;
    status)
      _hsm_pcscd_readers || { echo "pcscd is not running"; exit 3; }
      ;;
    *)
      echo "usage: bash scripts/pcscd.sh start|status (or source it and call pcscd_start / pcscd_stop)" >&2
      exit 2
      ;;
  esac
fi
