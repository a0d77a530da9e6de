"""The paper configs through a real vLLM server: SmolLM2 (served by vLLM) stands in for the text models, a tiny
random LLaVA (served by `transformers serve`) for the vision models, on the real annotation files with
placeholder images, to metrics or submission files.

Runs only inside ``bench/vllm_integration.py`` (``nox -s integration``), which starts vLLM in its own virtualenv
and sets CIRKIT_VLLM_URL and CIRKIT_VLLM_MODEL."""

import json
import os
import pathlib

import pytest
from click.testing import CliRunner

from cirkit.cli import main
from cirkit.experiment.experiment import load_experiment

URL, MODEL = os.environ.get("CIRKIT_VLLM_URL"), os.environ.get("CIRKIT_VLLM_MODEL")
pytestmark = pytest.mark.skipif(not URL, reason="needs a vLLM server: run bench/vllm_integration.py (nox -s integration)")

PAPER = pathlib.Path(__file__).parents[2] / "experiments" / "paper"
TEXT_ROLES = {"cirevl": ("reasoner",), "imagescope": ("reasoner", "propositions"), "osrcir": (), "ldre": ("reasoner",)}
VISION_ROLES = {"cirevl": ("captioner",), "imagescope": ("captioner", "verifier", "evaluator"), "osrcir": ("reasoner",),
                "ldre": ("captioner",)}
CONFIGS = sorted(p for p in PAPER.glob("*.toml") if not p.stem.startswith(("clip_baselines", "cir_lvlm", "cir_cot")))  # no servers


def role_overrides(role: str, url: str, model: str, max_tokens: int) -> list[str]:
    return [f'{role}.backend.base_url="{url}"', f'{role}.backend.model="{model}"', f'{role}.backend.api_key="none"',
            f"{role}.decoding.max_tokens={max_tokens}"]


def for_stand_ins(path: pathlib.Path, vision_roles: tuple[str, ...], folder: pathlib.Path) -> pathlib.Path:
    """The config without ``repetition_penalty`` in the vision roles' decoding: a vLLM sampling parameter that
    `transformers serve`, which stands in for the vision models here, refuses (HTTP 422)."""
    lines, section = [], ""
    for line in path.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[] ")
        if not (line.startswith("repetition_penalty") and section in {f"{r}.decoding" for r in vision_roles}):
            lines.append(line)
    copy = folder / path.name
    copy.write_text("\n".join(lines) + "\n")
    return copy


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_paper_config_runs_through_vllm(path, benchmarks, vlm_server, tmp_path):
    (spec,) = load_experiment(str(path)).runs
    method = load_experiment(str(path)).pipeline.name
    layout = spec.config.setup.data.layout
    data = benchmarks[layout]
    sets = [f'setup.data.root="{data["root"]}"', f'setup.data.clip="{benchmarks["clip"]}"', "setup.data.max_queries=2",
            'setup.data.missing_images="skip"']
    if "images_root" in data:
        sets.append(f'setup.data.images_root="{data["images_root"]}"')
    if layout == "fashioniq":
        sets.append('setup.data.category="dress"')  # one gallery: the tiny LLaVA captions it one image at a time
    for role in TEXT_ROLES[method]:
        sets += role_overrides(role, URL, MODEL, 64)
    for role in VISION_ROLES[method]:
        sets += role_overrides(role, vlm_server["base_url"], vlm_server["model"], 16)
    store = tmp_path / "store"
    args = ["run", str(for_stand_ins(path, VISION_ROLES[method], tmp_path)), "--store", str(store), "--quiet"] + [x for s in sets for x in ("--set", s)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads(next((store / "runs").glob("*.json")).read_text())
    assert "metrics" in record["outputs"] or any(k.startswith("submission") for k in record["outputs"])
    chats = [s for s in record["steps"] if s["stage"] == "chat"]
    # the store is new, so every answer was asked in this run; a later chat round may repeat an earlier round's
    # requests word for word (answers are cached per request): that step is a hit on this run's own answers
    assert chats and chats[0]["status"] == "computed"
    assert {s["status"] for s in chats} <= {"computed", "partial", "hit"}, [(s["step"], s["status"]) for s in chats]
