#!/usr/bin/env bash
# Set up, then show the whole product: a meeting with two synthetic participants recorded for ten
# seconds, the signed download link, and what ffprobe says of the file. Extra args go to `recordkit demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/recordkit demo "$@"
