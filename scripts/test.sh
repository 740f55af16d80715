#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: creates .venv, starts the local build stack
# (Docker engine + buildx, registry, QEMU; needs root) and runs pytest twice:
#   1. embedded configuration: SQLite + in-memory channel layer + worker in the server process;
#   2. scale-out configuration: PostgreSQL + Redis (channels-redis) + separate build workers.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not e2e"` or `scripts/test.sh -k api`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh

if [[ "${CROSSPORT_SKIP_STACK:-}" != 1 ]]; then
    if [[ $EUID -eq 0 ]]; then
        scripts/teststack.sh up
        eval "$(scripts/teststack.sh env)"
    else
        echo "test.sh: not root, so the build stack is not started; end-to-end tests will skip (CI=true: fail)" >&2
    fi
fi

echo "=== static checks: ruff, mypy ==="
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { echo "test.sh: run .venv/bin/ruff format ." >&2; exit 1; }
.venv/bin/mypy

PG_URL="${CROSSPORT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${CROSSPORT_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"

status=0
echo "=== configuration 1/2: embedded (SQLite, in-memory channel layer, worker in the server) ==="
env -u DATABASE_URL -u REDIS_URL .venv/bin/python -m pytest "$@" || status=$?
echo "=== configuration 2/2: scale-out (PostgreSQL, Redis, separate build workers) ==="
DATABASE_URL="$PG_URL" REDIS_URL="$REDIS" .venv/bin/python -m pytest "$@" || status=$?
exit "$status"
