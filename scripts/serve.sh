#!/usr/bin/env bash
# Run the portal on a fresh machine: creates .venv from requirements.lock, then
# `manage.py serve` (migrations, web server, websockets and, by default, the build worker).
# Arguments go to `manage.py serve`, e.g. --host 0.0.0.0 --port 8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python manage.py serve "$@"
