#!/usr/bin/env bash
# Runs the test suite.
#   tools/run_tests.sh [pytest args]              the INSTALLED microgradbn
#                                                 (pip install '.[test]' first)
#   tools/run_tests.sh --checkout [pytest args]   this checkout's microgradbn/
#                                                 (tools/dev_build.sh first)
# pytest args are options (-x, -k NAME, ...); the C tests run separately
# (ctest --test-dir build/dev, see tests/c/README.md).
# Environment: PYTHON (default python3), MGBN_TEST_WORKERS (pytest-xdist's -n,
# default auto).
# Fails if pytest collects no test (its exit code 5), and if the package that
# would be imported is not the one asked for: a checkout's microgradbn/ must
# not shadow an installed one, or the other way round.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
MODE=installed
if [[ ${1:-} == --checkout ]]; then MODE=checkout; shift; fi

if [[ $MODE == checkout ]]; then
  RUN_DIR=$REPO                     # `python -m` puts the current directory first on sys.path
else
  RUN_DIR=$(mktemp -d)              # anywhere but the checkout
  trap 'rm -rf "$RUN_DIR"' EXIT
fi

cd "$RUN_DIR"
PACKAGE=$("$PYTHON" -c 'import microgradbn, os; print(os.path.dirname(os.path.realpath(microgradbn.__file__)))')
if [[ $MODE == checkout && $PACKAGE != "$REPO/microgradbn" ]]; then
  echo "run_tests.sh: expected $REPO/microgradbn, but Python imports $PACKAGE" >&2; exit 1
fi
if [[ $MODE == installed && $PACKAGE == "$REPO/microgradbn" ]]; then
  echo "run_tests.sh: Python imports the checkout's microgradbn, not an installed one" >&2; exit 1
fi
echo "testing microgradbn from $PACKAGE"

# With pytest-xdist (the test extra), one worker per CPU: the suite runs 2.5x
# faster on 2 cores. MGBN_TEST_WORKERS=0 runs it in this process.
workers=()
if "$PYTHON" -c 'import xdist' 2> /dev/null; then workers=(-n "${MGBN_TEST_WORKERS:-auto}"); fi

status=0
"$PYTHON" -m pytest -q -p no:cacheprovider --rootdir "$REPO" "${workers[@]}" "$REPO/tests" "$@" || status=$?
if [[ $status == 5 ]]; then echo "run_tests.sh: pytest collected no tests" >&2; exit 1; fi
exit "$status"
