import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_peak_cache(tmp_path_factory):
    """Runs measure and cache the machine peak; keep that cache out of the user's home."""
    old = os.environ.get("DLBENCH_CACHE")
    os.environ["DLBENCH_CACHE"] = str(tmp_path_factory.mktemp("dlbench-cache"))
    yield
    if old is None:
        os.environ.pop("DLBENCH_CACHE", None)
    else:
        os.environ["DLBENCH_CACHE"] = old
