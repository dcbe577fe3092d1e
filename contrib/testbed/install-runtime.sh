#!/bin/bash
# Install scrun-rest from a checkout into the venv /opt/scrun-rest, where every
# user (rootless podman runs it as the test user) can read and run it.
#
#   install-runtime.sh [REPO_DIR]     (default: the checkout holding this script)
#
# The venv and the dependencies are made once; the package itself is
# reinstalled (non-editable) on every call, which takes a few seconds.
set -euo pipefail
_tb_t0=$(date +%s.%N)
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
umask 022

REPO_DIR=$(cd "${1:-$REPO_DIR_DEFAULT}" && pwd)
[[ -f $REPO_DIR/pyproject.toml ]] || die "$REPO_DIR has no pyproject.toml"
VENV=${TB_VENV}
PY=$VENV/bin/python
# Runtime and test dependencies, plus what building the package needs.
DEPS=(requests jsonschema lupa pyjwt pytest responses hypothesis "setuptools>=68" wheel)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [[ ! -x $PY ]]; then
    # Debian's python, not a pyenv one under /root that other users cannot reach.
    /usr/bin/python3 -m venv "$VENV"
    note "created venv $VENV ($("$PY" --version 2>&1))"
fi
stamp=$VENV/.testbed-deps
if [[ ! -f $stamp || $(cat "$stamp") != "${DEPS[*]}" ]]; then
    "$PY" -m pip install -q "${DEPS[@]}"
    printf '%s' "${DEPS[*]}" >"$stamp"
    note "installed dependencies: ${DEPS[*]}"
fi

# Build from a private copy: a build in place would leave build/ and
# *.egg-info in the checkout and race with a concurrent run.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$REPO_DIR" --exclude=.git --exclude='*.egg-info' --exclude=build --exclude=dist \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis --exclude=.tox \
    -cf - . | tar -C "$work" -xf -
"$PY" -m pip install -q --no-deps --no-build-isolation --no-cache-dir --force-reinstall "$work"
chmod -R a+rX "$VENV"
[[ -x $VENV/bin/scrun-rest ]] || die "$VENV/bin/scrun-rest was not installed"
note "installed scrun-rest $("$PY" -c 'import importlib.metadata as m; print(m.version("scrun-rest"))') from $REPO_DIR into $VENV ($(tb_elapsed) s)"
