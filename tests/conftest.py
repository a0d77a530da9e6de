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


REAL = ROOT.parent / "shared" / "real-annotations"


@pytest.fixture
def real_annotations():
    """The benchmarks' real annotation files (never copied into the repository)."""
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent: the real annotation files live beside the repository, not in it")
    return REAL


def make_images(paths, size=(8, 8)):
    """Tiny placeholder images under the names a split file gives (format from the extension)."""
    from PIL import Image

    for i, path in enumerate(paths):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)).save(path)
