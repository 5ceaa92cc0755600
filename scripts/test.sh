#!/usr/bin/env bash
# Lint and test recordkit: scripts/setup.sh, ruff, then pytest (extra args go to pytest).
# Exits non-zero if setup, ruff or pytest fails, or if pytest collected no tests.
set -euo pipefail

start_us=${EPOCHREALTIME//[.,]/}
report_elapsed() {
    local rc=$? elapsed_us=$((${EPOCHREALTIME//[.,]/} - start_us))
    printf 'test.sh: %s, total %d.%01ds\n' "$( ((rc == 0)) && echo ok || echo "FAILED (exit $rc)")" \
        $((elapsed_us / 1000000)) $((elapsed_us % 1000000 / 100000)) >&2
}
trap report_elapsed EXIT

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

status=0

lint_dirs=()
for d in recordkit tests bench; do
    [[ -d $d ]] && lint_dirs+=("$d")
done
if ((${#lint_dirs[@]})); then
    .venv/bin/ruff check --quiet "${lint_dirs[@]}" || { echo "test.sh: ruff check failed" >&2; status=1; }
fi

set +e
# The slowest tests are listed at the end, so the suite's 20-minute budget can be watched from any CI log.
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=30 "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "test.sh: pytest collected no tests (exit 5); treating that as a failure" >&2
    status=1
elif [[ $rc -ne 0 ]]; then
    echo "test.sh: pytest failed (exit $rc)" >&2
    status=1
fi

exit "$status"
