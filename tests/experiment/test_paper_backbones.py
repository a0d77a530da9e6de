"""The trained methods' paper configs name one vision-language folder as both the LLM and the visual pathway; with
tiny random folders of the same layout in their place (the `--set` overrides their headers show), the paper's
architecture settings build and embed queries from the backbone's own features."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

pytest.importorskip("torch", reason="the backbone folders are written by transformers + torch (the test extra)")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from backbone_fixtures import make_llava_next, make_qwen2_vl  # noqa: E402

from cirkit.experiment.experiment import load_experiment  # noqa: E402
from cirkit.methods.cir_lvlm.task import LVLMTask  # noqa: E402
from cirkit.mllm.model import backbone  # noqa: E402
from cirkit.mllm.vision import open_vision  # noqa: E402

PAPER = pathlib.Path(__file__).parents[2] / "experiments" / "paper"
TRAINED = sorted(PAPER.glob("cir_*.toml"))


@pytest.mark.parametrize("path", TRAINED, ids=lambda p: p.stem)
def test_one_folder_is_the_llm_and_the_visual_pathway_and_the_header_says_where_from(path):
    (spec,) = load_experiment(str(path)).runs
    text = path.read_text()
    header = text[: text.index("\npipeline")]
    assert spec.config.llm == spec.config.setup.data.clip
    repo = {"cir_lvlm": "llava-hf/llava-v1.6-vicuna-7b-hf", "cir_cot": "Qwen/Qwen2-VL-7B-Instruct"}[path.stem.rsplit("_", 1)[0]]
    assert f"huggingface-cli download {repo} --local-dir {spec.config.llm}" in header


def test_the_paper_settings_embed_on_a_llava_next_folder(tmp_path):
    """CIR-LVLM's paper settings (32 queries, pool 45 x 8 top 5, LoRA 16 on q/k/v/o, weighted mean) on a LLaVA-NeXT
    folder's own visual tokens and LLM: every trainable part is built and queries embed."""
    make_llava_next(tmp_path)
    (spec,) = load_experiment(str(PAPER / "cir_lvlm_cirr.toml"), (f"llm={tmp_path}", f"setup.data.clip={tmp_path}")).runs
    config = spec.config
    tower = open_vision(config.setup.data.clip)
    rng = np.random.default_rng(0)
    features = tower.states_of_pixels(rng.standard_normal((2, 3, 28, 28)).astype(np.float32))
    task = LVLMTask(config.lvlm, backbone(config.llm, "digest", config.lvlm.model, tower.dim), (5, 6, 7), (8, 9))
    params = task.init()
    assert params["connector"] and params["lora"] and len(jax.tree.leaves(params["pool"])) >= 2
    tokens = jnp.asarray(rng.integers(3, 90, size=(2, 6)), jnp.int32)
    queries, key_loss = jax.jit(task.embed_queries)(params, jnp.asarray(features), tokens, jnp.ones_like(tokens))
    assert queries.shape == (2, 48) and np.isfinite(np.asarray(queries)).all() and np.isfinite(float(key_loss))
    assert float(jnp.abs(queries[0] - queries[1]).max()) > 1e-6  # the two references give two queries


def test_the_headers_qwen2_vl_overrides_name_a_working_backbone(tmp_path):
    """The CIR-LVLM header's `--set` lines pointed at a Qwen2-VL folder: its tower and its LLM, of one width."""
    make_qwen2_vl(tmp_path)
    path = PAPER / "cir_lvlm_cirr.toml"
    keys = re.findall(r"--set (\S+)=\S+", path.read_text())
    assert sorted(keys) == ["llm", "setup.data.clip"]
    (spec,) = load_experiment(str(path), tuple(f"{key}={tmp_path}" for key in keys)).runs
    tower = open_vision(spec.config.setup.data.clip)
    bb = backbone(spec.config.llm, "digest", spec.config.lvlm.model, tower.dim)
    assert type(tower).__name__ == "Qwen2VLVision" and bb.lm.model_type == "qwen2" and bb.lm.hidden_size == tower.dim
