import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


def shared_path(*parts):
    """A path under ../shared, or a clean skip naming what is missing."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"../shared/{'/'.join(parts)} is not available on this machine")
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small synthetic TAU22-layout dataset shared by the tests."""
    from tfasc.data.synth import synthesize

    root = str(tmp_path_factory.mktemp("tau22") / "demo")
    synthesize(root, cities=2, locations_per_city=2, segments_per_location=4, seed=1)
    return root
