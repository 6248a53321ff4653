#!/usr/bin/env bash
# Start the services the test suite needs, run pytest, stop them whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."

cleanup() { deploy/dev/postgres.sh stop || true; }
trap cleanup EXIT

export RAGLINE_TEST_POSTGRES_URL
RAGLINE_TEST_POSTGRES_URL=$(deploy/dev/postgres.sh start)
echo "PostgreSQL for tests: $RAGLINE_TEST_POSTGRES_URL"

.venv/bin/python -m pytest "$@"
