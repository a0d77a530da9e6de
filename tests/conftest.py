import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


def cli_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("CIRKIT_STORE", None)
    env.update(extra)
    return env


def cirkit_cmd(*args):
    return [sys.executable, "-m", "cirkit.cli", *map(str, args)]


def run_cli(*args, check=True, **kw):
    return subprocess.run(cirkit_cmd(*args), env=cli_env(), capture_output=True, text=True, check=check, **kw)
