"""How the agent's code comes to life on a node: the boot script runs once
per process, and the shipped modules import each other without a cycle."""
import ast
import json
import os
import subprocess
import sys

from scrun_rest.agent import task_boot
from scrun_rest.anchor import job_script

# Prepended to the boot script: counts how often it runs in a process.
COUNT_BOOTS = ("import builtins\n"
               "builtins.scrun_boots = getattr(builtins, 'scrun_boots', 0) + 1\n")
# Run before the agent: reports the boot count and what was imported at exit.
REPORT_AT_EXIT = r"""
import atexit, builtins, json, sys
def _report():
    sys.stderr.write("REPORT " + json.dumps({
        "boots": getattr(builtins, "scrun_boots", 0),
        "modules": sorted(m for m in sys.modules if m.startswith("scrun_rest"))}) + "\n")
atexit.register(_report)
"""


def imported_modules(name, source, shipped):
    """The scrun_rest modules `name` imports anywhere in it (lazy ones too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.rsplit(".", node.level)[0]
                base = package + "." + base if base else package
            for alias in node.names:
                submodule = base + "." + alias.name
                found.add(submodule if submodule in shipped else base)
    return {module for module in found if module.split(".")[0] == "scrun_rest"}


def import_graph(sources):
    return {name: imported_modules(name, source, sources)
            for name, source in sources.items() if source}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    done, path = set(), []

    def visit(name):
        if name in path:
            return path[path.index(name):] + [name]
        if name in done:
            return None
        path.append(name)
        for imported in sorted(graph.get(name, ())):
            cycle = visit(imported)
            if cycle:
                return cycle
        path.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        cycle = visit(name)
        if cycle:
            return cycle
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_shipped_modules_import_each_other_without_a_cycle():
    cycle = find_cycle(import_graph(job_script.agent_sources()))
    assert cycle is None, " -> ".join(cycle)


def test_shipped_modules_import_only_shipped_modules():
    sources = job_script.agent_sources()
    for name, imported in import_graph(sources).items():
        assert job_script.BOOT_SCRIPT not in imported, "%s imports the boot script" % name
        missing = imported - set(sources)
        assert not missing, "%s imports %s, which the job script lacks" % (name, missing)


def counting_sources():
    sources = dict(job_script.agent_sources())
    sources["@boot"] = COUNT_BOOTS + sources["@boot"]
    return sources


def report_of(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("REPORT ")]
    assert len(lines) == 1, result.stderr
    return json.loads(lines[0][len("REPORT "):])


def test_the_job_agent_boots_once(tmp_path, monkeypatch):
    monkeypatch.setattr(job_script, "_SOURCES", counting_sources())
    script = job_script.build("cid", "127.0.0.1", 9, "00" * 32, python=sys.executable,
                              dial_timeout=0)
    path = tmp_path / "job.py"
    path.write_text(REPORT_AT_EXIT + script)
    result = subprocess.run([sys.executable, "-S", "-I", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=30,
                            cwd=str(tmp_path))
    report = report_of(result)
    assert report["boots"] == 1
    assert "scrun_rest.agent.job" in report["modules"]
    assert job_script.BOOT_SCRIPT not in report["modules"]


def test_a_task_boots_once(tmp_path):
    env = {task_boot.CODE_ENV: task_boot.pack_sources(counting_sources()),
           "PATH": os.environ["PATH"]}
    argv = task_boot.task_argv(sys.executable)
    argv[argv.index("-c") + 1] = REPORT_AT_EXIT + argv[argv.index("-c") + 1]
    result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=30, cwd=str(tmp_path))
    report = report_of(result)
    assert report["boots"] == 1
    assert "scrun_rest.agent.task" in report["modules"]
    assert job_script.BOOT_SCRIPT not in report["modules"]
