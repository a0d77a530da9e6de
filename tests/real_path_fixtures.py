"""Session-wide inputs of the real-path tests: a tiny random CLIP and every benchmark in its official layout,
the real annotation files where the project has them (CIRR test1, CIRCO, FashionIQ) and small hand-written
ones in the official formats otherwise (GeneCIS, Flickr30K, MSCOCO, VisDial), with tiny placeholder images
for the queries the tests run and enough gallery images (60) for a server's top-50 lists."""

import json
from pathlib import Path

import pytest
from conftest import REAL, make_images

QUERIES = 3  # queries per test run (max_queries); placeholder images exist for these
FILLER = 60  # further gallery images per benchmark


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _cirr(base: Path) -> dict:
    root = REAL / "cirr"
    names = json.loads((root / "split.rc2.test1.json").read_text())
    caps = json.loads((root / "cap.rc2.test1.json").read_text())
    wanted = {n for e in caps[:QUERIES] for n in (e["reference"], *e["img_set"]["members"])} | set(list(names)[:FILLER])
    make_images([base / "cirr-images" / names[n] for n in sorted(wanted)])
    return {"root": str(root), "images_root": str(base / "cirr-images")}


def _circo(base: Path) -> dict:
    """The real val/test files (linked, not copied) and a COCO image index naming every image they use."""
    root = base / "circo"
    root.mkdir()
    ids, wanted = set(), set()
    for split in ("val", "test"):
        (root / f"{split}.json").symlink_to(REAL / "circo" / f"{split}.json")
        entries = json.loads((REAL / "circo" / f"{split}.json").read_text())
        for i, e in enumerate(entries):
            used = {e["reference_img_id"], e.get("target_img_id"), *e.get("gt_img_ids", [])} - {None}
            ids |= used
            if i < QUERIES:
                wanted |= used
    wanted |= set(sorted(ids)[:FILLER])
    _write(root / "image_info_unlabeled2017.json",
           {"images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in sorted(ids)]})
    make_images([base / "circo-images" / f"{i:012d}.jpg" for i in sorted(wanted)])
    return {"root": str(root), "images_root": str(base / "circo-images")}


def _fashioniq(base: Path) -> dict:
    root = REAL / "fashioniq"
    wanted = set()
    for cat in ("dress", "shirt", "toptee"):
        caps = json.loads((root / f"cap.{cat}.val.json").read_text())
        names = json.loads((root / f"split.{cat}.val.json").read_text())
        wanted |= {n for e in caps[:QUERIES] for n in (e["candidate"], e["target"])} | set(names[:FILLER])
    make_images([base / "fiq-images" / f"{n}.png" for n in sorted(wanted)])
    return {"root": str(root), "images_root": str(base / "fiq-images")}


def _genecis(base: Path) -> dict:
    """Two of the four tasks (COCO-object ones), selected by the tests' ``task`` field."""
    root = base / "genecis"
    for t, task in enumerate(("change_object", "focus_object")):
        entries = [{"reference": {"val_image_id": 100 * t + 10 * q}, "target": {"val_image_id": 100 * t + 10 * q + 1},
                    "condition": ["dog", "car", "red bus"][q],
                    "gallery": [{"val_image_id": 100 * t + 10 * q + g} for g in range(2, 8)]} for q in range(QUERIES)]
        _write(root / f"{task}.json", entries)
        make_images([root / "val2017" / f"{i:012d}.jpg" for q in range(QUERIES) for i in
                     range(100 * t + 10 * q, 100 * t + 10 * q + 8)])
    return {"root": str(root)}


def _karpathy(base: Path, dataset: str, filename: str, folder: str) -> dict:
    root = base / dataset
    images = [{"filename": f"{i}.jpg", "split": "test" if i < 12 else "train", "imgid": i,
               "sentences": [{"raw": f"a photo number {i} view {j}", "sentid": 10 * i + j} for j in range(5)]}
              for i in range(14)]
    if dataset == "mscoco":
        for im in images:
            im["filepath"] = folder
    _write(root / filename, {"images": images, "dataset": dataset})
    make_images([root / folder / im["filename"] for im in images])
    return {"root": str(root)}


def _visdial(base: Path) -> dict:
    root = base / "visdial"
    space = [f"VisualDialog_val2018/VisualDialog_val2018_{i:012d}.jpg" for i in range(20)]
    dialogs = [{"img": space[5 * q], "dialog": [f"a scene number {q}"] + [f"is it thing {r}? yes" for r in range(10)]}
               for q in range(QUERIES)]
    _write(root / "Search_Space_val_50k.json", space)
    _write(root / "VisDial_v1.0_queries_val.json", dialogs)
    make_images([root / p for p in space])
    return {"root": str(root)}


def make_benchmarks(tmp_path_factory) -> dict:
    """layout -> {root, images_root?} plus "clip": a tiny random CLIPModel folder (the ``benchmarks`` fixture)."""
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent: the real annotation files live beside the repository, not in it")
    pytest.importorskip("torch", reason="the tiny CLIP checkpoint is written by transformers + torch (test extra)")
    from clip_fixtures import make_clip_checkpoint

    base = tmp_path_factory.mktemp("real-path")
    make_clip_checkpoint(base / "clip", image_size=16, patch=8, hidden=32, layers=1, projection=16)
    return {"clip": str(base / "clip"), "cirr": _cirr(base), "circo": _circo(base), "fashioniq": _fashioniq(base),
            "genecis": _genecis(base), "flickr30k": _karpathy(base, "flickr30k", "dataset_flickr30k.json",
                                                                  "flickr30k-images"),
            "mscoco": _karpathy(base, "mscoco", "dataset_coco.json", "val2014"), "visdial": _visdial(base)}


def experiment(tmp_path: Path, benchmarks: dict, pipeline: str, layout: str, *, split: str = "", extra: str = "",
               max_queries: int = QUERIES, name: str = "run", data: str = "") -> Path:
    """An experiment file for one (method, benchmark) pair on the fixtures, a few queries, images skipped."""
    b = benchmarks[layout]
    lines = [f'pipeline = "{pipeline}"', f'name = "{name}"', extra,
             "[setup.data]", 'source = "files"', f'layout = "{layout}"', f'root = "{b["root"]}"',
             f'clip = "{benchmarks["clip"]}"', f"max_queries = {max_queries}", 'missing_images = "skip"', data]
    if split:
        lines.append(f'split = "{split}"')
    if "images_root" in b:
        lines.append(f'images_root = "{b["images_root"]}"')
    path = tmp_path / f"{pipeline}-{layout}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
