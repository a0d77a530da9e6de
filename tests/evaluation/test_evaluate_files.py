"""``cirkit evaluate`` against independent implementations of each official scorer, to 1e-9, on the real
annotation files where they exist (CIRCO val, FashionIQ val, CIRR test1 for the checks) and on small files
in the official layouts elsewhere, with hand-picked and random (hypothesis) predictions."""

import json
import random

import official_scorers as ref
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cirkit.cli import main
from cirkit.cli_evaluate import score_file
from cirkit.data.loaders import load_split


def cli(*args):
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    return result


def cli_json(*args):
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), [line for line in result.stderr.splitlines() if line.startswith("warning:")]


# --- CIRCO -------------------------------------------------------------------------------------------------

def circo_truth(root):
    ann = json.loads((root / "val.json").read_text())
    gts = {str(e["id"]): e["gt_img_ids"] for e in ann}
    targets = {str(e["id"]): e["target_img_id"] for e in ann}
    aspects = {str(e["id"]): e["semantic_aspects"] for e in ann}
    return gts, targets, aspects


def test_circo_official_example_matches_the_official_arithmetic(real_annotations):
    root = real_annotations / "circo"
    example = root / "submission_val_example.json"
    preds = json.loads(example.read_text())
    gts, targets, aspects = circo_truth(root)
    ours, warnings = cli_json("circo", "--annotations", root, "--predictions", example)
    ref.assert_close(ours, ref.circo_official(preds, gts, targets, aspects))
    assert warnings == [], "the official example has no repeats"
    assert ours["mAP@5"] == 100 * sum(
        sum((sum(1 for y in preds[q][: i + 1] if y in gts[q]) / (i + 1)) for i, x in enumerate(preds[q][:5]) if x in gts[q])
        / min(len(gts[q]), 5) for q in preds) / len(preds), "stored at full precision, not rounded"


def test_circo_repeated_target_once_versus_official(real_annotations, tmp_path):
    root = real_annotations / "circo"
    preds = json.loads((root / "submission_val_example.json").read_text())
    gts, targets, aspects = circo_truth(root)
    repeated = {q: [targets[q], targets[q], *[x for x in p if x != targets[q]][:48]] for q, p in preds.items()}
    path = tmp_path / "repeated.json"
    path.write_text(json.dumps(repeated))
    once, warnings = cli_json("circo", "--annotations", root, "--predictions", path)
    official, _ = cli_json("circo", "--annotations", root, "--predictions", path, "--duplicates", "official")
    ref.assert_close(official, ref.circo_official(repeated, gts, targets, aspects))
    ref.assert_close(once, ref.circo_first_occurrence(repeated, gts, targets, aspects))
    assert official["mAP@5"] > once["mAP@5"] + 30 and official["R@5"] == 200.0 and once["R@5"] == 100.0
    assert len(warnings) == 1 and warnings[0].startswith("warning: 220 queries list an image more than once")
    assert "--duplicates official" in warnings[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.sampled_from(["once", "official"]))
def test_circo_random_predictions(real_annotations, tmp_path, seed, length, duplicates):
    root = real_annotations / "circo"
    gts, targets, aspects = circo_truth(root)
    rng = random.Random(seed)
    pool = sorted({g for v in gts.values() for g in v})[:400] + list(range(1, 200))
    preds = {q: [rng.choice(pool) if rng.random() < 0.7 else rng.choice(gts[q]) for _ in range(length)] for q in gts}
    path = tmp_path / f"random-{seed}-{length}.json"
    path.write_text(json.dumps(preds))
    found = load_split("circo", str(root), split="val", require_gallery=False)
    from cirkit.evaluation.prediction_files import score_circo

    ours = score_circo(found, str(path), duplicates=duplicates).metrics
    expected = (ref.circo_official if duplicates == "official" else ref.circo_first_occurrence)(preds, gts, targets, aspects)
    ref.assert_close(ours, expected)


# --- CIRR --------------------------------------------------------------------------------------------------

def test_cirr_test1_checks_reference_members_and_repeats(real_annotations, tmp_path):
    root = real_annotations / "cirr"
    example = json.loads((root / "test1_pred_ranks_recall_subset_example.json").read_text())
    queries = {str(e["pairid"]): e for e in json.loads((root / "cap.rc2.test1.json").read_text())}
    metrics, warnings = cli_json("cirr", "--annotations", root, "--split", "test1", "--predictions",
                                 root / "test1_pred_ranks_recall_subset_example.json")
    assert metrics == {} and warnings == [], "the official example is clean"
    ids = [k for k in example if k not in ("version", "metric")]
    outside = next(n for n in json.loads((root / "split.rc2.test1.json").read_text())
                   if all(n not in queries[q]["img_set"]["members"] for q in ids[3:5]))
    for q in ids[:3]:
        example[q] = [queries[q]["reference"], *example[q][:2]]
    for q in ids[3:5]:
        example[q] = [example[q][0], outside, example[q][1]]
    example[ids[5]] = [example[ids[5]][0]] * 3
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(example))
    result = cli("cirr", "--annotations", root, "--split", "test1", "--predictions", path)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith("warning: 3 queries list their own reference image") and "removes" in lines[0]
    assert lines[1].startswith("warning: 2 queries list images outside their img_set") and "dropped" in lines[1]
    assert lines[2].startswith("warning: 1 queries list an image more than once")
    assert "no public ground truth" in result.stderr


def cirr_val_from_test1(real_annotations, tmp_path, seed=0):
    """CIRR test1's real queries and gallery with a target drawn from each img_set (test1 has none public)."""
    root = real_annotations / "cirr"
    rng = random.Random(seed)
    entries = json.loads((root / "cap.rc2.test1.json").read_text())[:300]
    for e in entries:
        e["target_hard"] = rng.choice([m for m in e["img_set"]["members"] if m != e["reference"]])
    (tmp_path / "cap.rc2.val.json").write_text(json.dumps(entries))
    (tmp_path / "split.rc2.val.json").write_text((root / "split.rc2.test1.json").read_text())
    names = list(json.loads((root / "split.rc2.test1.json").read_text()))
    return entries, names


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.integers(0, 2**32 - 1), st.sampled_from(["remove", "keep"]))
def test_cirr_random_predictions(real_annotations, tmp_path_factory, seed, reference):
    tmp = tmp_path_factory.mktemp("cirr")
    entries, names = cirr_val_from_test1(real_annotations, tmp, seed % 7)
    rng = random.Random(seed)
    full, subset = {"version": "rc2", "metric": "recall"}, {"version": "rc2", "metric": "recall_subset"}
    for e in entries:
        near = [*e["img_set"]["members"], e["target_hard"], e["reference"]]
        full[str(e["pairid"])] = [rng.choice(near) if rng.random() < 0.2 else rng.choice(names) for _ in range(50)]
        subset[str(e["pairid"])] = [rng.choice(near) if rng.random() < 0.8 else rng.choice(names) for _ in range(3)]
    (tmp / "full.json").write_text(json.dumps(full))
    (tmp / "subset.json").write_text(json.dumps(subset))
    refs = {str(e["pairid"]): e["reference"] for e in entries}
    targets = {str(e["pairid"]): e["target_hard"] for e in entries}
    members = {str(e["pairid"]): set(e["img_set"]["members"]) for e in entries}
    ours = score_file("cirr", str(tmp), str(tmp / "full.json"), reference=reference).metrics
    no_refs = refs if reference == "remove" else {q: None for q in refs}
    ref.assert_close(ours, ref.cirr_recall(full, no_refs, targets))
    ours = score_file("cirr", str(tmp), str(tmp / "subset.json"), reference=reference).metrics
    ref.assert_close(ours, ref.cirr_recall_subset(subset, no_refs, members, targets))


def test_cirr_reference_is_removed_as_the_server_does(real_annotations, tmp_path):
    entries, names = cirr_val_from_test1(real_annotations, tmp_path)
    e = entries[0]
    rest = [n for n in names if n not in (e["reference"], e["target_hard"])]
    preds = {"version": "rc2", "metric": "recall"}
    for o in entries:
        preds[str(o["pairid"])] = [n for n in names if n not in (o["reference"], o["target_hard"])][:50]
    preds[str(e["pairid"])] = [e["reference"], e["target_hard"], *rest[:48]]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    removed, warnings = cli_json("cirr", "--annotations", tmp_path, "--predictions", tmp_path / "p.json")
    kept, _ = cli_json("cirr", "--annotations", tmp_path, "--predictions", tmp_path / "p.json", "--reference", "keep")
    one = pytest.approx(100 / 300, abs=1e-12)
    assert removed["R@1"] == one and kept["R@1"] == 0.0 and kept["R@5"] == one
    assert warnings[0].startswith("warning: 1 queries list their own reference image")


# --- FashionIQ ---------------------------------------------------------------------------------------------

def fashioniq_truth(root):
    targets, galleries, refs = {}, {}, {}
    for cat in ("dress", "shirt", "toptee"):
        caps = json.loads((root / f"cap.{cat}.val.json").read_text())
        targets[cat] = {f"{cat}-{i}": e["target"] for i, e in enumerate(caps)}
        refs[cat] = {f"{cat}-{i}": e["candidate"] for i, e in enumerate(caps)}
        galleries[cat] = json.loads((root / f"split.{cat}.val.json").read_text())
    return targets, galleries, refs


@pytest.mark.parametrize("seed", [0, 1, 2])  # real-size files: a few seeds, no shrinking
def test_fashioniq_val_random_predictions_and_unrounded_average(real_annotations, tmp_path_factory, seed):
    root = real_annotations / "fashioniq"
    targets, galleries, refs = fashioniq_truth(root)
    rng = random.Random(seed)
    per_cat = {cat: {q: ([t] if rng.random() < 0.1 else []) + rng.sample(galleries[cat], 60)
                     for q, t in targets[cat].items()} for cat in targets}
    for cat in per_cat:  # move targets around, so R@10 and R@50 differ
        for q, row in per_cat[cat].items():
            if rng.random() < 0.3:
                row.insert(rng.randrange(0, 60), targets[cat][q])
    path = tmp_path_factory.mktemp("fiq") / "preds.json"
    path.write_text(json.dumps({q: r for rows in per_cat.values() for q, r in rows.items()}))
    ours, _ = cli_json("fashioniq", "--annotations", root, "--predictions", path)
    ref.assert_close(ours, ref.fashioniq(per_cat, targets))
    one, _ = cli_json("fashioniq", "--annotations", root, "--predictions", path, "--category", "shirt")
    # a file with every category is accepted when one is scored
    assert one["shirt R@10"] == ours["shirt R@10"] and one["avg R@10"] == ours["shirt R@10"]


def test_fashioniq_keeps_the_reference_by_default(real_annotations, tmp_path):
    root = real_annotations / "fashioniq"
    targets, galleries, refs = fashioniq_truth(root)
    others = {q: [g for g in galleries["dress"] if g not in (targets["dress"][q], refs["dress"][q])][:50]
              for q in targets["dress"]}
    preds = {q: [refs["dress"][q], *others[q][:9], targets["dress"][q]] for q in targets["dress"]}
    (tmp_path / "p.json").write_text(json.dumps(preds))
    kept, warnings = cli_json("fashioniq", "--annotations", root, "--predictions", tmp_path / "p.json",
                              "--category", "dress")
    removed, _ = cli_json("fashioniq", "--annotations", root, "--predictions", tmp_path / "p.json",
                          "--category", "dress", "--reference", "remove")
    assert kept["dress R@10"] == 0.0 and removed["dress R@10"] == 100.0
    assert warnings[0].startswith(f"warning: dress: {len(preds)} queries list their reference image")


def test_fashioniq_missing_query_names_the_file_and_query(real_annotations, tmp_path):
    root = real_annotations / "fashioniq"
    (tmp_path / "p.json").write_text(json.dumps({"dress-0": ["x"]}))
    result = cli("fashioniq", "--annotations", root, "--predictions", tmp_path / "p.json", "--category", "dress")
    assert result.exit_code == 1
    assert f"{tmp_path / 'p.json'}: query dress-0: 'x' is not an image of fashioniq-dress val" in result.output
    assert "Traceback" not in result.output


# --- GeneCIS, Flickr30K / MSCOCO, VisDial (official layouts, small files) -----------------------------------

def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.integers(0, 2**32 - 1))
def test_genecis_random_predictions(tmp_path_factory, seed):
    tmp = tmp_path_factory.mktemp("genecis")
    rng = random.Random(seed)
    entries = []
    for _ in range(40):
        ids = rng.sample(range(1, 500), 12)
        entries.append({"reference": {"val_image_id": ids[0]}, "target": {"val_image_id": ids[1]},
                        "gallery": [{"val_image_id": i} for i in ids[2:]], "condition": "dog"})
    write(tmp / "change_object.json", entries)
    galleries = {str(i): {str(e["target"]["val_image_id"]), *(str(g["val_image_id"]) for g in e["gallery"])}
                 for i, e in enumerate(entries)}
    everything = sorted({str(e["reference"]["val_image_id"]) for e in entries} | set().union(*galleries.values()))
    preds = {q: rng.sample(sorted(g), len(g)) for q, g in galleries.items()}
    for q in list(preds)[:5]:
        preds[q].insert(0, rng.choice(everything))  # maybe outside the query's gallery
    write(tmp / "p.json", preds)
    ours, _ = cli_json("genecis", "--annotations", tmp, "--task", "change_object", "--predictions", tmp / "p.json")
    targets = {str(i): str(e["target"]["val_image_id"]) for i, e in enumerate(entries)}
    ref.assert_close(ours, ref.genecis(preds, galleries, targets))


@pytest.mark.parametrize("dataset", ["flickr30k", "mscoco"])
def test_text_to_image_five_captions_per_image(tmp_path, dataset):
    rng = random.Random(3)
    images = [{"filename": f"{i}.jpg", "split": "test" if i < 30 else "train",
               "sentences": [{"raw": f"c{j}", "sentid": 5 * i + j} for j in range(5)]} for i in range(40)]
    write(tmp_path / {"flickr30k": "dataset_flickr30k.json", "mscoco": "dataset_coco.json"}[dataset], {"images": images})
    names = [f"{i}.jpg" for i in range(30)]
    preds = {str(5 * i + j): rng.sample(names, 30) for i in range(30) for j in range(5)}
    write(tmp_path / "p.json", preds)
    ours, _ = cli_json(dataset, "--annotations", tmp_path, "--predictions", tmp_path / "p.json")
    targets = {str(5 * i + j): f"{i}.jpg" for i in range(30) for j in range(5)}
    ref.assert_close(ours, ref.recall(preds, targets, (1, 5, 10)))
    assert len(targets) == 150, "every caption is a query"


def test_visdial_cumulative_hits(tmp_path):
    rng = random.Random(5)
    space = [f"val2018/VisualDialog_val2018_{i:012d}.jpg" for i in range(40)]
    dialogs = [{"img": space[i], "dialog": ["a caption", *[f"q{j}? a{j}" for j in range(10)]]} for i in range(25)]
    write(tmp_path / "Search_Space_val_50k.json", space)
    write(tmp_path / "VisDial_v1.0_queries_val.json", dialogs)
    preds = {str(i): [rng.sample(space, 20) for _ in range(11)] for i in range(25)}
    write(tmp_path / "p.json", preds)
    ours, _ = cli_json("visdial", "--annotations", tmp_path, "--predictions", tmp_path / "p.json")
    expected = ref.visdial_hits(preds, {str(i): space[i] for i in range(25)})
    ref.assert_close(ours, expected)
    values = [ours[f"Hits@10 r{r}"] for r in range(11)]
    assert values == sorted(values) and values[-1] > values[0], "cumulative over rounds"


def test_bad_options_and_files_are_one_line_errors(real_annotations, tmp_path):
    root = real_annotations / "circo"
    no_task = cli("genecis", "--annotations", tmp_path, "--predictions", root / "submission_val_example.json")
    assert no_task.exit_code == 1 and "genecis: --task is required" in no_task.output
    bad_ks = cli("circo", "--annotations", root, "--predictions", root / "submission_val_example.json", "--ks", "5,x")
    assert bad_ks.exit_code == 2 and "expected comma-separated integers" in bad_ks.output
    (tmp_path / "list.json").write_text("[]")
    not_object = cli("fashioniq", "--annotations", real_annotations / "fashioniq", "--predictions", tmp_path / "list.json")
    assert not_object.exit_code == 1 and "expected an object mapping query ids" in not_object.output
    stray = cli("circo", "--annotations", root, "--predictions", root / "submission_val_example.json",
                "--reference", "keep")
    assert stray.exit_code == 1 and "circo: --reference does not apply to this benchmark" in stray.output
    for result in (no_task, bad_ks, not_object, stray):
        assert "Traceback" not in result.output


def test_ks_override_and_circo_test_split_checks_only(real_annotations, tmp_path):
    root = real_annotations / "circo"
    preds = json.loads((root / "submission_val_example.json").read_text())
    gts, targets, aspects = circo_truth(root)
    ours, _ = cli_json("circo", "--annotations", root, "--predictions", root / "submission_val_example.json",
                       "--ks", "1,3")
    ref.assert_close(ours, ref.circo_official(preds, gts, targets, aspects, ks=(1, 3)))
    test_queries = json.loads((root / "test.json").read_text())
    (tmp_path / "test.json").write_text(json.dumps({str(e["id"]): [1, 2, 3] for e in test_queries}))
    result = cli("circo", "--annotations", root, "--split", "test", "--predictions", tmp_path / "test.json", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {} and "no public ground truth" in result.stderr
