#!/usr/bin/env bash
# make run: gwpipe on its embedded defaults, fed by loadgen, delivering to a
# local fake Datadog intake — no AWS account and no Datadog key needed.
# With DD_API_KEY set, gwpipe delivers to Datadog (DD_SITE) for real and no
# fake intake is started. Ctrl-C drains the pipeline and prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

FIREHOSE_ADDR=${FIREHOSE_ADDR:-127.0.0.1:8088}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:8089}
INTAKE_ADDR=${INTAKE_ADDR:-127.0.0.1:8080}
RATE=${RATE:-5000}            # events per second from loadgen
REPORT=${REPORT:-5s}
ACCESS_KEY=${ACCESS_KEY:-local-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}
RUN_DIR=data/run
mkdir -p "$RUN_DIR"

cleanup() {
  trap - INT TERM EXIT
  # Stop the traffic first, then let gwpipe drain and summarise, then stop
  # the intake it drained into. (Ctrl-C already reached gwpipe and loadgen:
  # a second signal is harmless to both.)
  [ -n "${LOADGEN_PID:-}" ] && { kill -TERM "$LOADGEN_PID" 2>/dev/null; wait "$LOADGEN_PID" 2>/dev/null; }
  [ -n "${GWPIPE_PID:-}" ] && { kill -TERM "$GWPIPE_PID" 2>/dev/null; wait "$GWPIPE_PID" 2>/dev/null; }
  [ -n "${INTAKE_PID:-}" ] && { kill -TERM "$INTAKE_PID" 2>/dev/null; wait "$INTAKE_PID" 2>/dev/null; }
  return 0
}
trap cleanup INT TERM EXIT

wait_http() { # host:port
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

if [ -z "${DD_API_KEY:-}" ]; then
  echo "DD_API_KEY is not set: delivering to a local fake Datadog intake on $INTAKE_ADDR (recordings in $RUN_DIR/intake)"
  # Its own session: Ctrl-C reaches gwpipe and loadgen, and the intake stays
  # up until gwpipe has drained into it.
  setsid bin/fakeintake -listen "$INTAKE_ADDR" -out "$RUN_DIR/intake" -keep 100000 2> "$RUN_DIR/fakeintake.log" &
  INTAKE_PID=$!
  wait_http "$INTAKE_ADDR"
  export DD_API_KEY=local-fake-key
  export GWPIPE_DATADOG_LOGS_URL="http://$INTAKE_ADDR/api/v2/logs"
  export GWPIPE_DATADOG_API_URL="http://$INTAKE_ADDR"
else
  echo "DD_API_KEY is set: delivering to Datadog (site ${DD_SITE:-datadoghq.com})"
fi

export GWPIPE_SOURCES_FIREHOSE_LISTEN="$FIREHOSE_ADDR"
export GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS="$ACCESS_KEY"
export GWPIPE_ADMIN_LISTEN="$ADMIN_ADDR"
export GWPIPE_DLQ_DIR="${GWPIPE_DLQ_DIR:-$RUN_DIR/dlq}"
# Stage tags come from AWS; with no AWS account the logs carry the tags
# their origin gives (account, region, API, stage). Set it to true to read them.
export GWPIPE_ENRICH_AWS_TAGS="${GWPIPE_ENRICH_AWS_TAGS:-false}"

bin/gwpipe run --report "$REPORT" &
GWPIPE_PID=$!
wait_http "$FIREHOSE_ADDR"
echo "gwpipe: Firehose endpoint http://$FIREHOSE_ADDR/  status http://$ADMIN_ADDR/status  (Ctrl-C to stop)"

bin/loadgen -url "http://$FIREHOSE_ADDR/" -access-key "$ACCESS_KEY" -rate "$RATE" 2> "$RUN_DIR/loadgen.log" &
LOADGEN_PID=$!

wait "$GWPIPE_PID"
