#!/usr/bin/env bash
# Lint and test recordkit: scripts/setup.sh, ruff, then pytest: the whole suite in two lanes (`waits` tests beside
# the rest), or, given arguments, one pytest run with them.
# Exits non-zero if setup, ruff (check or format) or pytest fails, or if pytest collected no tests.
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
    .venv/bin/ruff format --check --quiet "${lint_dirs[@]}" || { echo "test.sh: ruff format --check failed" >&2; status=1; }
fi

check_pytest() {  # $1: pytest's exit code, $2: which run
    if [[ $1 -eq 5 ]]; then
        echo "test.sh: $2 collected no tests (exit 5); treating that as a failure" >&2
        status=1
    elif [[ $1 -ne 0 ]]; then
        echo "test.sh: $2 failed (exit $1)" >&2
        status=1
    fi
}

pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider)
set +e
if (($# == 0)); then
    # The whole suite in two lanes: the tests marked `waits` (minutes of wall clock at under a third of a core)
    # beside the rest, which starts with its quiet directories (tests/conftest.py). Both start their own servers.
    lane_log="$(mktemp)"
    "${pytest[@]}" -m waits >"$lane_log" 2>&1 &
    lane_pid=$!
    # The slowest tests are listed at the end, so the suite's 20-minute budget can be watched from any CI log.
    "${pytest[@]}" --durations=30 -m "not waits"
    rc=$?
    wait "$lane_pid"
    lane_rc=$?
    echo "test.sh: the waits lane (pytest -m waits):" >&2
    cat "$lane_log"
    rm -f "$lane_log"
    check_pytest "$lane_rc" "pytest -m waits"
else
    "${pytest[@]}" --durations=30 "$@"
    rc=$?
fi
set -e
check_pytest "$rc" "pytest"

exit "$status"
