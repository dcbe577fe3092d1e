#!/bin/bash
# THE test command: install the runtime from this checkout into /opt/scrun-rest,
# then run the whole suite with that venv's python from the repository root.
#
#   contrib/testbed/run-tests.sh [PYTEST ARGS...]
#
# Tests marked `testbed` need a testbed brought up by contrib/testbed/setup.sh
# (as root); without it they skip. Exit code 5 (no tests collected) is a failure.
set -uo pipefail
here=$(dirname "$(readlink -f "$0")")
repo=$(cd "$here/../.." && pwd)
cd "$repo" || exit 1
if [[ $(id -u) -eq 0 || -w /opt/scrun-rest ]]; then
    "$here/install-runtime.sh" "$repo" || exit 1
fi
[[ -x /opt/scrun-rest/bin/python ]] || {
    echo "run-tests.sh: /opt/scrun-rest is missing: run contrib/testbed/install-runtime.sh as root" >&2
    exit 1
}
/opt/scrun-rest/bin/python -m pytest -ra tests "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
    echo "run-tests.sh: pytest collected no tests: treating that as a failure" >&2
    exit 1
fi
exit $rc
