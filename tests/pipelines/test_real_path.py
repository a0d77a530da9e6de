"""Every method on every benchmark it applies to, from an experiment file, on the real annotation files (CIRR
test1, CIRCO val/test, FashionIQ val) or small files in the official formats, with placeholder images: each
run ends in metrics or in server submission files that the official readers accept.

Fast stand-ins: a tiny random CLIP, the CLIP substitutes for the vision roles, and for the text reasoner a
scripted OpenAI-compatible HTTP server on 127.0.0.1 (SmolLM2 would make each run minutes long; the real
SmolLM2 path is covered by tests/methods)."""

import json

import pytest
from click.testing import CliRunner
from conftest import REAL
from real_path_fixtures import QUERIES, experiment

from cirkit.cli import main
from cirkit.data.loaders import load_split
from cirkit.evaluation.submissions import read_circo_submission, read_cirr_submission

ANSWER = {"target": "a photo of a dog on grass", "descriptions": ["a dog", "a dog on grass", "a dog on green grass"],
          "operations": ["Addition: grass"], "propositions": [{"question": "is there a dog?", "answer": "yes"}]}


@pytest.fixture(scope="module")
def reasoner_url():
    """A scripted OpenAI-compatible server (a real HTTP server) answering every text-reasoner request with JSON
    that carries the keys CIReVL and ImageScope read."""
    from fake_servers import Scripted

    server = Scripted(lambda n, body: (200, {"model": "scripted", "choices": [{"message": {"content": json.dumps(ANSWER)}}]}, {}))

    def models(handler):
        data = json.dumps({"data": [{"id": "scripted", "created": 1}]}).encode()
        handler.send_response(200)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    server.server.RequestHandlerClass.do_GET = models
    yield server.url
    server.close()


def text_roles(url: str, *names: str) -> str:
    return "\n".join(f'[{n}.backend]\nkind = "openai"\nmodel = "scripted"\nbase_url = "{url}"\napi_key = "x"'
                     for n in names)


EXTRA = {
    "cirevl": lambda url: text_roles(url, "reasoner"),
    "osrcir": lambda url: "",
    "imagescope": lambda url: "chat_rounds = 1\n" + text_roles(url, "reasoner", "propositions"),
    "clip_baselines": lambda url: "chat_rounds = 2",
}

PAIRS = [("clip_baselines", b) for b in ("cirr", "circo", "fashioniq", "genecis", "flickr30k", "mscoco", "visdial")]
PAIRS += [(m, b) for m in ("cirevl", "osrcir") for b in ("cirr", "circo", "fashioniq", "genecis")]
PAIRS += [("imagescope", b) for b in ("cirr", "circo", "fashioniq", "flickr30k", "mscoco", "visdial")]


def run(path, store, *args):
    result = CliRunner().invoke(main, ["run", str(path), "--store", str(store), "--quiet", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def record(store):
    return json.loads(next((store / "runs").glob("*.json")).read_text())


def retrieve_configs(rec):
    return {s["step"]: s["config"] for s in rec["steps"] if s["stage"] == "retrieve"}


@pytest.mark.parametrize("pipeline,layout", PAIRS)
def test_method_runs_to_metrics_on_the_benchmark(pipeline, layout, benchmarks, reasoner_url, tmp_path):
    split = "test1" if layout == "cirr" else ""  # the only CIRR annotations here are test1's
    data = {"genecis": 'task = ["change_object", "focus_object"]',  # several parts: averaged
            "fashioniq": "" if pipeline == "clip_baselines" else 'category = "dress"'}.get(layout, "")
    path = experiment(tmp_path, benchmarks, pipeline, layout, split=split, extra=EXTRA[pipeline](reasoner_url),
                      data=data)
    store = tmp_path / "store"
    out = run(path, store)
    rec = record(store)
    if layout == "cirr":  # no ground truth: the run ends in the two server files
        assert "no metrics, only submission files" in out.output
        check_cirr_submission(store, rec, benchmarks, keeps_reference=pipeline == "imagescope")
        return
    metrics = rec["metrics"]
    rows = metrics if pipeline == "clip_baselines" and layout not in ("flickr30k", "mscoco", "visdial") else \
        {"": metrics}
    if pipeline == "clip_baselines" and layout in ("cirr", "circo", "fashioniq", "genecis"):
        assert set(rows) == {"text", "image", "sum", "average"}
    for row in rows.values():
        expected = {"circo": {"mAP@5", "mAP@10", "mAP@25", "mAP@50", "R@50"},
                    "fashioniq": {f"{c} R@{k}" for c in ("dress", "shirt", "toptee") for k in (10, 50)}
                    | {"avg R@10", "avg R@50"} if pipeline == "clip_baselines" else {"R@10", "R@50"},
                    "genecis": {f"{t} R@{k}" for t in ("change_object", "focus_object") for k in (1, 2, 3)}
                    | {"avg R@1", "avg R@2", "avg R@3"},
                    "flickr30k": {"R@1", "R@5", "R@10"}, "mscoco": {"R@1", "R@5", "R@10"},
                    "visdial": {"Hits@10 r0", "Hits@10 r1"}}[layout]
        assert expected <= set(row), (expected - set(row))
        if layout == "fashioniq" and pipeline == "clip_baselines":  # the average is over categories, not queries
            assert row["avg R@50"] == pytest.approx(sum(row[f"{c} R@50"] for c in ("dress", "shirt", "toptee")) / 3,
                                                    abs=1e-3)
            assert row["dress skipped queries"] == 0 and row["dress queries"] == QUERIES
    configs = retrieve_configs(rec)
    if layout == "fashioniq":  # FashionIQ never removes the reference image, whatever the method
        assert configs and all(c["exclude_reference"] is False for c in configs.values())
    if layout == "circo":  # CIRCO's own evaluation removes it; ImageScope keeps it (its exclusion is commented out)
        full = [c for c in configs.values() if not c["subset"]]
        assert full and all(c["exclude_reference"] is (pipeline != "imagescope") for c in full)
    if layout == "genecis":  # each query ranked within its own gallery
        assert configs and all(c["subset"] is True for c in configs.values())


def check_cirr_submission(store, rec, benchmarks, keeps_reference):
    """`cirkit export RUN submission FILE` writes recall and recall_subset files the official reader accepts,
    shaped like the benchmark's own example, for exactly the queries run; the reference is never listed."""
    split = load_split("cirr", benchmarks["cirr"]["root"], split="test1")
    split = split.__class__(split.benchmark, split.split, split.gallery, split.queries[:QUERIES],
                            split.truths[:QUERIES])
    outputs = [k for k in rec["outputs"] if k.startswith("submission")]
    assert outputs
    example = json.loads((REAL / "cirr" / "test1_pred_ranks_recall_subset_example.json").read_text())
    for output in outputs:
        target = store.parent / f"{output.replace(' ', '_')}.json"
        result = CliRunner().invoke(main, ["export", "run", output,
                                           str(target), "--store", str(store)])
        assert result.exit_code == 0, result.output
        recall, subset = (target.with_name(f"{target.stem}.{m}.json") for m in ("recall", "recall_subset"))
        assert read_cirr_submission(str(recall), split)[0] == "recall"
        assert read_cirr_submission(str(subset), split)[0] == "recall_subset"
        ours = json.loads(subset.read_text())
        assert {k: v for k, v in ours.items() if not k.isdigit()} == {k: v for k, v in example.items()
                                                                     if not k.isdigit()}
        members = {q.id: set(t.subset) - {q.reference} for q, t in zip(split.queries, split.truths)}
        assert all(set(ours[q]) <= members[q] for q in members)
        full = json.loads(recall.read_text())
        assert keeps_reference or all(q.reference not in full[q.id] for q in split.queries)


def test_circo_test_ends_in_a_submission_file_and_the_dry_run_says_so(benchmarks, reasoner_url, tmp_path):
    path = experiment(tmp_path, benchmarks, "cirevl", "circo", split="test", extra=EXTRA["cirevl"](reasoner_url))
    store = tmp_path / "store"
    dry = CliRunner().invoke(main, ["run", str(path), "--store", str(store), "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0 and "circo test has no public ground truth: no metrics, only submission files" in dry.output
    assert not (store / "runs").exists() or not list((store / "runs").glob("*.json"))
    run(path, store)
    rec = record(store)
    assert "metrics" not in rec["outputs"] and not any(s["stage"] == "evaluate" for s in rec["steps"])
    target = tmp_path / "circo.json"
    assert CliRunner().invoke(main, ["export", "run", "submission", str(target), "--store",
                                     str(store)]).exit_code == 0
    split = load_split("circo", benchmarks["circo"]["root"], split="test", require_gallery=False)
    split = split.__class__(split.benchmark, split.split, split.gallery, split.queries[:QUERIES], None)
    ranked = read_circo_submission(str(target), split)
    assert all(len(v) == 50 and q.reference not in v for q, v in zip(split.queries, ranked.values()))


def test_missing_images_fail_with_the_list_by_default(benchmarks, tmp_path):
    path = experiment(tmp_path, benchmarks, "clip_baselines", "circo")
    path.write_text(path.read_text().replace('missing_images = "skip"', ""))
    result = CliRunner().invoke(main, ["run", str(path), "--store", str(tmp_path / "store"), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "images are missing:" in result.output and ".jpg" in result.output
    assert 'missing_images = "skip"' in result.output


def test_skipped_images_are_counted_with_the_metrics(benchmarks, tmp_path):
    """The CIRCO fixture has images for the first queries only: with max_queries = 10 the later ones are
    skipped, and the metrics say how many."""
    path = experiment(tmp_path, benchmarks, "clip_baselines", "circo", extra='modes = ["image"]', max_queries=10)
    store = tmp_path / "store"
    run(path, store)
    row = record(store)["metrics"]["image"]
    assert row["queries"] + row["skipped queries"] == 10 and row["skipped queries"] > 0
    assert row["gallery images"] >= 50 and row["skipped gallery images"] > 0


def test_scann_is_selectable_and_its_index_is_built_once(benchmarks, tmp_path):
    path = experiment(tmp_path, benchmarks, "clip_baselines", "circo",
                      extra='[retrieval]\nbackend = "scann"\n[setup.scann]\nnum_leaves = 4\nnum_leaves_to_search = 4\n'
                            "training_sample_size = 50\nreorder = 20")
    store = tmp_path / "store"
    run(path, store)
    rec = record(store)
    index_steps = [s for s in rec["steps"] if s["stage"] == "build_index"]
    assert len(index_steps) == 4, "one index step per baseline"
    assert [s["status"] for s in index_steps].count("computed") == 1, "one gallery, one index, reused"
    assert all(c["backend"] == "scann" for c in retrieve_configs(rec).values())
    assert set(rec["metrics"]["sum"]) >= {"mAP@5", "mAP@50"}
