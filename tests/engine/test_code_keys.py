"""Keys follow the code that computes a value: edits deep inside cirkit turn exactly the dependent stages into
misses, on a copy of the package in tmp (the working tree is never edited)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cirkit
from cirkit.engine.fingerprint import code_changes

STAGES = {
    "evaluate": "cirkit.evaluation.stages:evaluate",
    "evaluate_chat": "cirkit.evaluation.stages:evaluate_chat",
    "recall": "cirkit.pipelines.synthetic:recall",
    "exact_search": "cirkit.pipelines.synthetic:exact_search",
    "make_gallery": "cirkit.pipelines.synthetic:make_gallery",
    "retrieve": "cirkit.retrieval.stages:retrieve",
    "embed_images": "cirkit.encoders.stages:embed_images",
    "embed_texts": "cirkit.encoders.stages:embed_texts",
    "train_builtin_clip": "cirkit.training.clip_trainer:train_clip_segment",
    "chat": "cirkit.models.stages:chat",
}

# (file, old, new): each edit changes what the code computes
PERCENT = ("evaluation/metrics.py", "100.0 * float(x)", "1.0 * float(x)")
EPSILON = ("encoders/clip_model.py", 'nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name="final_layer_norm")',
           'nn.LayerNorm(epsilon=cfg.layer_norm_eps * 10, dtype=jnp.float32, name="final_layer_norm")')
# a custom gradient's backward pass, attached by a module-level `f.defvjp(forward, backward)` statement
BACKWARD = ("encoders/mixed_matmul.py", "g16 = g.astype(_BF16)", "g16 = (2 * g).astype(_BF16)")
TIE_RULE = ("retrieval/exact.py", "np.lexsort((i, -s), axis=1)", "np.lexsort((-i, -s), axis=1)")
# How answers are delivered (retry timing) vs what is asked (the request body)
RETRY = ("models/backends/openai_compat.py", "cfg.backoff * 2**attempt", "cfg.backoff * 3**attempt")
BODY = ("models/backends/openai_compat.py", '"max_tokens": d.max_tokens,', '"max_tokens": d.max_tokens + 1,')
# ... and these only change layout: a comment, a docstring, line breaks
LAYOUT = [
    ("evaluation/metrics.py", "def _pct(x: float) -> float:\n", 'def _pct(x: float) -> float:\n    """Percent."""\n    # as papers do\n'),
    ("retrieval/exact.py", "np.lexsort((i, -s), axis=1)", "np.lexsort(\n        (i, -s),\n        axis=1,\n    )"),
    ("encoders/clip_model.py", "epsilon=cfg.layer_norm_eps, dtype=jnp.float32, name=\"final_layer_norm\")",
     "epsilon=cfg.layer_norm_eps,  # the checkpoint's\n        dtype=jnp.float32, name=\"final_layer_norm\")"),
]

# Runs in a subprocess whose `cirkit` is the copy: imports the stages once, then for each variant edits the
# copy's files, forgets the memoised analyses and fingerprints again (the analysis reads the files, so this
# is what a fresh process would compute; test_fresh_process_agrees checks that), then restores the files.
PROBE = r"""
import importlib, json, pathlib, sys
import cirkit
from cirkit.engine import fingerprint
spec = json.loads(sys.argv[1])
assert pathlib.Path(cirkit.__file__).resolve().is_relative_to(pathlib.Path.cwd().resolve()), cirkit.__file__
stages = {n: getattr(importlib.import_module(r.split(":")[0]), r.split(":")[1]) for n, r in spec["stages"].items()}
out = {}
for variant, edits in spec["variants"].items():
    saved = {}
    for name, old, new in edits:
        path = pathlib.Path("cirkit", name)
        text = saved.setdefault(path, path.read_text())
        current = path.read_text()
        if old not in current:
            sys.exit(f"the edit {old!r} no longer matches {path}: update the test")
        path.write_text(current.replace(old, new))
    fingerprint.clear_caches()
    out[variant] = {n: {"code": s.code, "identity": s.identity, "deps": s.analysis.deps} for n, s in stages.items()}
    for path, text in saved.items():
        path.write_text(text)
print(json.dumps(out))
"""


def copy_package(tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(Path(cirkit.__file__).parent, root / "cirkit", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def probe(root: Path, stages: dict, variants: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps({"stages": stages, "variants": variants})],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    root = copy_package(tmp_path_factory.mktemp("keys"))
    return probe(root, STAGES, {"base": [], "percent": [PERCENT], "epsilon": [EPSILON], "tie_rule": [TIE_RULE],
                                "backward": [BACKWARD], "layout": LAYOUT, "retry": [RETRY], "body": [BODY]})


@pytest.mark.parametrize("edit,dependent", [
    ("percent", {"evaluate", "evaluate_chat", "recall"}),
    ("epsilon", {"train_builtin_clip"}),  # the generic embed stages key CLIP's code through its ModelRef
    ("tie_rule", {"retrieve", "exact_search"}),
    ("backward", {"train_builtin_clip"}),  # the demo's mixed-precision CLIP trains through that backward pass
])
def test_deep_edit_changes_exactly_the_dependent_stages(variants, edit, dependent):
    base, edited = variants["base"], variants[edit]
    changed = {n for n in STAGES if edited[n]["identity"] != base[n]["identity"]}
    assert changed == dependent


@pytest.mark.parametrize("edit,stage,definition", [
    ("percent", "evaluate", "cirkit.evaluation.metrics._pct"),
    ("epsilon", "train_builtin_clip", "cirkit.encoders.clip_model.ClipText"),
    ("tie_rule", "retrieve", "cirkit.retrieval.exact._sorted_top"),
    ("backward", "train_builtin_clip", "cirkit.encoders.mixed_matmul._backward"),
])
def test_the_changed_definition_is_named(variants, edit, stage, definition):
    before, after = variants["base"][stage]["deps"], variants[edit][stage]["deps"]
    assert code_changes(before, after) == [f"code changed: {definition}"]


@pytest.mark.parametrize("edit", ["retry", "body"])
def test_model_calls_stop_at_the_backend(variants, edit):
    """No edit of a backend's code changes ``chat``'s own key: cached answers are precious. What the backend
    asks and how it reads answers enters through the backend identity instead (next test)."""
    assert variants[edit] == variants["base"]
    assert variants["base"]["chat"]["deps"]["cirkit.models.stages.make_backend"] == "opaque"
    assert not [d for d in variants["base"]["chat"]["deps"] if d.startswith("cirkit.models.backends.")]


def test_the_backend_identity_follows_what_is_asked_not_how_it_is_delivered(tmp_path):
    root = copy_package(tmp_path)
    code = ("import json, sys; from cirkit.models.stages import answer_code_digest; "
            "print(json.dumps({k: answer_code_digest(k) for k in ('openai', 'clip')}))")
    env = {**os.environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu"}

    def digests(*edits):
        for name, old, new in edits:
            path = root / "cirkit" / name
            path.write_text(path.read_text().replace(old, new))
        out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    base = digests()
    retry = digests(RETRY)
    assert retry == base, "retry timing is delivery, not content"
    body = digests(BODY)
    assert body["openai"] != base["openai"] and body["clip"] == base["clip"]


def test_layout_edits_change_nothing(variants):
    assert variants["layout"] == variants["base"]


def test_fresh_process_agrees(variants, tmp_path):
    """Editing the copy *before* importing it gives the fingerprint the in-place probe computed."""
    root = copy_package(tmp_path)
    path = root / "cirkit" / PERCENT[0]
    path.write_text(path.read_text().replace(PERCENT[1], PERCENT[2]))
    fresh = probe(root, {"evaluate": STAGES["evaluate"], "retrieve": STAGES["retrieve"]}, {"x": []})["x"]
    assert fresh["evaluate"]["code"] == variants["percent"]["evaluate"]["code"] != variants["base"]["evaluate"]["code"]
    assert fresh["retrieve"]["code"] == variants["base"]["retrieve"]["code"]


KIND_PROBE = r"""
import json, pathlib, sys
from cirkit.encoders import interface
from cirkit.engine import fingerprint
out = {}
for variant, edits in json.loads(sys.argv[1]).items():
    saved = {}
    for name, old, new in edits:
        path = pathlib.Path("cirkit", name)
        saved[path] = path.read_text()
        assert old in saved[path], f"the edit {old!r} no longer matches {path}: update the test"
        path.write_text(saved[path].replace(old, new))
    fingerprint.clear_caches()
    interface._code.cache_clear()
    out[variant] = {k: interface.kind_code_digest(k) for k in ("clip", "causal_lm")}
    for path, text in saved.items():
        path.write_text(text)
print(json.dumps(out))
"""


def test_an_encoder_kinds_code_enters_its_model_reference(tmp_path):
    """The generic embed stages never name CLIP's code; a model reference carries its kind's code digest, so a
    CLIP edit changes CLIP references (and what they embedded), not the causal LM's, and layout changes nothing."""
    root = copy_package(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"}
    variants = {"base": [], "epsilon": [EPSILON], "layout": [LAYOUT[2]]}
    done = subprocess.run([sys.executable, "-c", KIND_PROBE, json.dumps(variants)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["epsilon"]["clip"] != out["base"]["clip"]
    assert out["epsilon"]["causal_lm"] == out["base"]["causal_lm"]
    assert out["layout"] == out["base"]
