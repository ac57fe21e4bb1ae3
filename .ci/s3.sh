#!/usr/bin/env bash
# Start (start) or stop (stop) a local S3-compatible server for the object-store tests: moto's server
# mode from the project's venv (make install), on loopback. `start` prints the endpoint URL; the tests
# use it through HYBRIDMIX_S3_ENDPOINT (without it, each test process starts its own server).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${HYBRIDMIX_S3_HOME:-$HERE/s3work}"
PORT="${HYBRIDMIX_S3_PORT:-9768}"
PID="$WORK/moto.pid"
mkdir -p "$WORK"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
case "${1:-}" in
  start)
    port_open "$PORT" && { echo "s3: port $PORT is in use by a process this script did not start" >&2; exit 1; }
    nohup "$HERE/../.venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" > "$WORK/moto.log" 2>&1 < /dev/null &
    echo $! > "$PID"
    for _ in $(seq 1 300); do
      port_open "$PORT" && { echo "http://127.0.0.1:$PORT"; exit 0; }
      kill -0 "$(cat "$PID")" 2>/dev/null || { tail -20 "$WORK/moto.log" >&2; echo "s3: moto_server exited" >&2; exit 1; }
      sleep 0.1
    done
    echo "s3: moto_server did not listen on port $PORT within 30 s" >&2; exit 1 ;;
  stop)
    [[ -s "$PID" ]] && kill "$(cat "$PID")" 2>/dev/null || true
    rm -f "$PID" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
