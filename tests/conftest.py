import pytest


def pytest_collection_modifyitems(config, items):
    # Tests under e2e/ and integration/ need the live testbed.
    for item in items:
        path = str(item.fspath)
        if "/e2e/" in path or "/integration/" in path:
            item.add_marker(pytest.mark.testbed)
