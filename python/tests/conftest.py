import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "fixtures" / "models"


def tiny(name):
    return str(MODELS / name)


@pytest.fixture(scope="session")
def llama():
    import gradlens
    return gradlens.load(tiny("tiny-llama"))


def real_model(name):
    """A fetched model (scripts/fetch-models.sh); under CI=true its absence is a failure."""
    path = ROOT / "models" / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing (run scripts/fetch-models.sh)")
        pytest.skip(f"{path} is not fetched")
    return str(path)


def cli():
    """The gradlens binary cargo built beside this package (GRADLENS_BIN, else target/)."""
    for candidate in [os.environ.get("GRADLENS_BIN"), ROOT / "target" / "release" / "gradlens",
                      ROOT / "target" / "debug" / "gradlens", shutil.which("gradlens")]:
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    pytest.skip("no gradlens binary built")
