#!/usr/bin/env bash
# Test network helper: start/stop the interop peers on loopback (see test/helpers/peers.ts).
#   test/peers.sh up   [STATE_DIR]   dnsmasq 127.0.0.200:5353, smtp-sink 127.0.0.201:25,
#                                    Postfix 127.0.0.202:25, aiosmtpd 127.0.0.203:25; PIDs → STATE_DIR/pids
#   test/peers.sh down [STATE_DIR]   stop every peer listed there, by PID
# Needs root (port 25, Postfix) and a build (npx tsc -p .). The tests and the benchmark start
# their own peers through the same module; this script is for poking at them by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
state="${2:-/tmp/mxd-peers}"
case "${1:-}" in
  up|down) exec node dist/test/helpers/peers.js "$1" "$state" ;;
  *) echo "usage: $0 up|down [STATE_DIR]" >&2; exit 2 ;;
esac
