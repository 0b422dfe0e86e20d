import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jgd

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.fail("ruff is part of the test extras: pip install -e '.[test]'")
    run = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_public_api_is_exported():
    for name in jgd.__all__:
        assert hasattr(jgd, name), name
    for name in [
        "fit",
        "gd",
        "momentum",
        "nesterov",
        "objective",
        "least_squares",
        "Dataset",
        "Status",
    ]:
        assert name in jgd.__all__
