"""The main job prints no "PyTorch was not found" advice: cirkit uses transformers only for tokenisers."""

import subprocess
import sys

# A child process where torch is absent (sys.modules["torch"] = None makes find_spec report it missing), as on
# a machine without the optional torch extra; torch itself is installed here for the parity tests.
WITHOUT_TORCH = "import sys; sys.modules['torch'] = None\n"


def _stderr(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH + code], capture_output=True, text=True, timeout=300,
                            env={"JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_tokenizer_import_is_quiet_without_torch():
    assert "PyTorch was not found" in _stderr("import transformers"), "the child really lacks torch"
    quiet = _stderr("from cirkit.encoders.clip_text import clip_tokenizer_class\n"
                    "assert clip_tokenizer_class().__name__.startswith('CLIPTokenizer')\n"
                    "import logging; logging.getLogger('transformers').warning('another warning')")
    assert "PyTorch was not found" not in quiet
    assert "another warning" in quiet, "only that one advice is silenced, and only during the import"
