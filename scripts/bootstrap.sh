#!/usr/bin/env bash
# Create (or refresh) .venv at the repository root from requirements.lock.
# Idempotent: reinstalls only when the lock file changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    # Django 6 needs Python >= 3.12; prefer the newest interpreter on the machine.
    local candidate
    for candidate in python3.13 python3.12 "$HOME/.pyenv/versions/3.13.0/bin/python3.13" \
                     "$HOME/.pyenv/versions/3.12.1/bin/python3.12" python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "bootstrap: no Python >= 3.12 found (tried python3.13, python3.12, pyenv, python3)" >&2
    return 1
}

if [[ ! -x .venv/bin/python ]]; then
    "$(find_python)" -m venv .venv
fi
stamp=.venv/.requirements.lock.sha256
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" || ! -x .venv/bin/crossport ]]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.lock
    # The project itself, editable and without dependencies (the lock pinned them): this puts
    # the `crossport` command ([project.scripts]) in .venv/bin.
    .venv/bin/python -m pip install --quiet --no-deps --editable .
    echo "$want" > "$stamp"
fi
