"""Runs the agent from module sources carried inside the job script.

Nothing is installed on the cluster: the job script holds the sources of the
stdlib-only modules the agent needs, and this loader makes them importable
under their usual names. Task shims started by srun get the same sources
through the environment (see task_boot.py), so every node runs identical code.

It runs once per process, exec'd as __scrun_boot__ by the job script or
TASK_BOOT; it is not one of the modules it serves, so nothing imports it
a second time. Python 3.6+.
"""
import importlib.machinery
import sys


class _SourceFinder:
    """Finder and loader in one. Not derived from importlib.abc, whose import
    (importlib.resources, pathlib, typing) costs every agent and task ~6 ms."""

    def __init__(self, sources):
        self._sources = sources

    def _is_package(self, name):
        prefix = name + "."
        return any(key.startswith(prefix) for key in self._sources)

    def find_spec(self, name, path=None, target=None):
        if name not in self._sources and not self._is_package(name):
            return None
        return importlib.machinery.ModuleSpec(
            name, self, is_package=self._is_package(name))

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source = self._sources.get(module.__name__, "")
        exec(compile(source, "<scrun-rest %s>" % module.__name__, "exec"), module.__dict__)


def install(sources):
    sys.meta_path.insert(0, _SourceFinder(sources))


def run(sources, params):
    install(sources)
    from scrun_rest.agent import entry
    sys.exit(entry.main(sys.argv[1:], sources, params))


if __name__ == "__scrun_boot__":
    run(SOURCES, PARAMS)  # noqa: F821 - provided by the job script or TASK_BOOT
