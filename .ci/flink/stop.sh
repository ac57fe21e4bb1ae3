#!/usr/bin/env bash
# Stop what .ci/flink/setup.sh started: the Beam job server (by its PID file) and the Flink
# cluster (bin/stop-cluster.sh, then the PIDs Flink recorded). Idempotent; keeps the downloads.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${HYBRIDMIX_FLINK_HOME:-$HERE/work}"
FLINK="$WORK/flink-1.19.3"
RUN="$WORK/run"

# stop_pid PID NAME: TERM, wait up to 20 s, then KILL. Only PIDs this setup recorded are touched.
stop_pid() {
  local pid=$1 name=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  echo "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "$name (pid $pid) still running after 20 s; sending KILL"
  kill -9 "$pid" 2>/dev/null
  sleep 0.5
}

if [[ -s "$RUN/jobserver.pid" ]]; then
  stop_pid "$(cat "$RUN/jobserver.pid")" "Beam job server"
fi
rm -f "$RUN/jobserver.pid"

if [[ -x "$FLINK/bin/stop-cluster.sh" ]] && compgen -G "$RUN/flink-*.pid" >/dev/null; then
  FLINK_CONF_DIR="$FLINK/conf" "$FLINK/bin/stop-cluster.sh" >/dev/null 2>&1 || true
fi
for f in "$RUN"/flink-*-taskexecutor.pid "$RUN"/flink-*-standalonesession.pid; do
  [[ -f "$f" ]] || continue
  while read -r pid; do
    [[ -n "$pid" ]] && stop_pid "$pid" "Flink $(basename "$f" .pid)"
  done < "$f"
  rm -f "$f"
done
echo "Flink cluster and Beam job server stopped"
