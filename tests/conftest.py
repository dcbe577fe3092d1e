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
