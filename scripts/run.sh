#!/usr/bin/env bash
# Run the recordkit server (after making sure the environment is set up).
#   HOST (default 127.0.0.1), PORT (default 8787), DATA_DIR (default ./recordkit-data);
#   extra arguments are passed to `recordkit serve`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

exec .venv/bin/recordkit serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8787}" \
    --data-dir "${DATA_DIR:-./recordkit-data}" "$@"
