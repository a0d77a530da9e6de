"""experiments/paper/: one runnable config per method x benchmark the papers report, each saying how to run it,
which servers to start with which vLLM flags, and what the paper got."""

import pathlib
import re

import pytest

from cirkit.experiment.experiment import load_experiment

PAPER = pathlib.Path(__file__).parents[2] / "experiments" / "paper"
MATRIX = {"clip_baselines": ("cirr", "circo", "fashioniq", "genecis", "flickr30k", "mscoco", "visdial"),
          "cirevl": ("cirr", "circo", "fashioniq"), "osrcir": ("cirr", "circo", "fashioniq"),
          "imagescope": ("cirr", "circo", "fashioniq", "flickr30k", "mscoco", "visdial"), "ldre": ("cirr", "circo"),
          "cir_lvlm": ("cirr", "fashioniq"), "cir_cot": ("cirr", "fashioniq")}
CONFIGS = sorted(PAPER.glob("*.toml"))


def test_every_method_benchmark_pair_has_a_config():
    assert {p.stem for p in CONFIGS} == {f"{m}_{b}" for m, bs in MATRIX.items() for b in bs}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_paper_config_loads_and_its_header_says_how_to_run_it(path):
    (spec,) = load_experiment(str(path)).runs
    text = path.read_text()
    header = text[: text.index("\npipeline")]
    method = next(m for m in sorted(MATRIX, key=len, reverse=True) if path.stem.startswith(m + "_"))
    benchmark = path.stem.removeprefix(method + "_")
    data = spec.config.setup.data
    assert data.source == "files" and data.layout == benchmark and data.clip
    assert f"cirkit run experiments/paper/{path.name}" in header
    assert re.search(r"# Paper: .*\d+\.\d\d", header) or "not in cirkit's notes" in header or "carry no number" in header
    if (benchmark, data.split) in (("cirr", "test1"), ("circo", "test")):
        assert f"cirkit export {spec.name} submission" in header
    local = [getattr(spec.config, role).backend.model for role in ("captioner", "reasoner", "propositions", "verifier",
                                                                    "evaluator") if hasattr(spec.config, role)
             and "127.0.0.1" in getattr(spec.config, role).backend.base_url]
    for model in local:  # every local server is started in the header, with the flags the model needs
        assert re.search(rf"vllm\.entrypoints\.openai\.api_server --model {re.escape(model)} ", header), model
    if "google/paligemma-3b-mix-224" in local or "Salesforce/blip2-flan-t5-xxl" in local:
        templates = re.findall(r"--chat-template (\S+\.jinja)", header)
        assert templates and all((PAPER.parents[1] / t).is_file() for t in templates)
    if "OpenGVLab/InternVL2-8B" in local:
        assert "--trust-remote-code" in header and "--limit-mm-per-prompt" in header


CIREVL_PROMPTS = {"cirr": "cirevl/structural", "circo": "cirevl/contextual", "fashioniq": "cirevl/fashion"}


@pytest.mark.parametrize("benchmark", sorted(CIREVL_PROMPTS))
def test_cirevl_paper_configs_run_as_the_official_code(benchmark):
    """CIReVL's official run: the benchmark's own rewrite prompt (structural, contextual, fashion), answers read
    from the "Edited Description:" line, and the detailed-description request to the BLIP-2 captioner."""
    (spec,) = load_experiment(str(PAPER / f"cirevl_{benchmark}.toml")).runs
    assert spec.config.reasoner.prompt.name == CIREVL_PROMPTS[benchmark]
    assert spec.config.answer_format == "edited_description"
    assert spec.config.captioner.prompt.name == "cirevl/captioner"


def test_ldre_published_config_runs_without_models():
    (spec,) = load_experiment(str(PAPER / "published" / "ldre_circo.toml")).runs
    assert spec.config.published.endswith("test_multi_gpt3-5.json") and spec.config.captions == 15
    assert "cirkit run experiments/paper/published/ldre_circo.toml" in (PAPER / "published" / "ldre_circo.toml").read_text()
