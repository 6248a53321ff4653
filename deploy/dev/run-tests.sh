#!/usr/bin/env bash
# Start the services the test suite needs, run pytest, stop them whatever happens.
# PostgreSQL and Kafka start in parallel (a few seconds each); each script prints its
# address as the last line of its stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=$(mktemp -d)
cleanup() {
  deploy/dev/kafka.sh stop --clean || true
  deploy/dev/postgres.sh stop || true
  rm -rf "$out"
}
trap cleanup EXIT

deploy/dev/os-deps.sh  # Tesseract for the OCR tests, installed when missing

deploy/dev/postgres.sh start >"$out/postgres" &
pg=$!
deploy/dev/kafka.sh start >"$out/kafka" &
kafka=$!
failed=0
wait "$pg" || { echo "run-tests.sh: PostgreSQL did not start" >&2; failed=1; }
wait "$kafka" || { echo "run-tests.sh: Kafka did not start" >&2; failed=1; }
[ "$failed" = 0 ] || exit 1

export RAGLINE_TEST_POSTGRES_URL RAGLINE_TEST_KAFKA_BOOTSTRAP
RAGLINE_TEST_POSTGRES_URL=$(tail -n 1 "$out/postgres")
RAGLINE_TEST_KAFKA_BOOTSTRAP=$(tail -n 1 "$out/kafka" | sed -n 's/^bootstrap=//p')
[ -n "$RAGLINE_TEST_POSTGRES_URL" ] || { echo "run-tests.sh: postgres.sh printed no URL" >&2; exit 1; }
[ -n "$RAGLINE_TEST_KAFKA_BOOTSTRAP" ] || { echo "run-tests.sh: kafka.sh printed no bootstrap=" >&2; exit 1; }
echo "PostgreSQL for tests: $RAGLINE_TEST_POSTGRES_URL"
echo "Kafka for tests: $RAGLINE_TEST_KAFKA_BOOTSTRAP"

.venv/bin/python -m pytest "$@"
