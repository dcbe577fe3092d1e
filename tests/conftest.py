import os

import pytest


def pytest_collection_modifyitems(config, items):
    # Tests under e2e/ and integration/ need the live testbed.
    for item in items:
        path = str(item.fspath)
        if "/e2e/" in path or "/integration/" in path:
            item.add_marker(pytest.mark.testbed)


def _unavailable(message):
    __tracebackhide__ = True  # report the caller's line
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def unavailable():
    """unavailable(message): what a test does without something it needs (a
    daemon, shared/): skip on a developer's machine, fail under CI (CI=true),
    where a skip would pass unseen. A fixture, as conftest modules are not
    importable by name."""
    return _unavailable


# -- the matrix: which engine ran against which Slurm release -----------------
# An engine fixture names its test's cell with
#   request.node.user_properties.append(("matrix", (slurm, engine)))
# and the run ends with a table of what passed in each cell (issue 14).
_cells = {}  # nodeid -> (cell, outcome): failed beats skipped beats passed


def pytest_runtest_logreport(report):
    cell = dict(report.user_properties).get("matrix")
    if cell is None:
        return
    if report.failed:
        outcome = "failed"
    elif report.skipped:
        outcome = "skipped"
    elif report.when == "call":
        outcome = "passed"
    else:
        return
    rank = ("passed", "skipped", "failed")
    _, before = _cells.get(report.nodeid, (cell, "passed"))
    _cells[report.nodeid] = (tuple(cell), max(before, outcome, key=rank.index))


def pytest_terminal_summary(terminalreporter):
    if not _cells:
        return
    counts = {}
    for cell, outcome in _cells.values():
        counts.setdefault(cell, {}).setdefault(outcome, 0)
        counts[cell][outcome] += 1
    releases = sorted({slurm for slurm, _ in counts})
    engines = sorted({engine for _, engine in counts})
    rows = [["core set passed/run"] + engines]
    for slurm in releases:
        row = [slurm]
        for engine in engines:
            seen = counts.get((slurm, engine))
            if not seen:
                row.append("-")
                continue
            text = "%d/%d" % (seen.get("passed", 0), sum(seen.values()))
            if seen.get("failed"):
                text += " FAILED"
            elif seen.get("skipped"):
                text += " (%d skipped)" % seen["skipped"]
            row.append(text)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    terminalreporter.section("Slurm releases x engines")
    for row in rows:
        terminalreporter.line("  ".join(text.ljust(width) for text, width in zip(row, widths)))
