"""Data selection and protocol defaults as plain functions: what a config field selects, what each benchmark's
official protocol is, and how missing images are failed on or skipped."""

import pytest

from cirkit.data.errors import DataError
from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split, Truth
from cirkit.data.selection import MissingImagesConfig, apply_image_policy, selection_report
from cirkit.pipelines.scoring import resolve_protocol
from cirkit.pipelines.setup import DataConfig, benchmark_configs, has_ground_truth, query_limit
from cirkit.retrieval.stages import RetrievalConfig


def files(layout, **kw):
    return DataConfig(source="files", layout=layout, root="/r", **kw)


def test_query_cuts_the_cirr_val_cut_applies_to_cirr_val_only():
    assert query_limit(files("cirr", val_cut=2400)) == 2400
    assert query_limit(files("cirr", val_cut=2400, max_queries=5)) == 5
    assert query_limit(files("cirr", split="test1", val_cut=2400)) == 0
    assert query_limit(files("circo", val_cut=2400)) == 0


def test_fashioniq_categories_and_genecis_tasks_become_parts():
    parts = benchmark_configs(files("fashioniq"))
    assert [name for name, _ in parts] == ["dress", "shirt", "toptee"]
    assert {c.category for _, c in parts} == {"dress", "shirt", "toptee"} and all(c.split == "val" for _, c in parts)
    assert parts[0][1].join == "{c0} and {c1}" and parts[0][1].strip_captions is False
    ((name, one),) = benchmark_configs(files("fashioniq", category="shirt"))
    assert name == "" and one.category == "shirt"
    assert [n for n, _ in benchmark_configs(files("genecis", task=("focus_object", "change_object")))] == \
        ["focus_object", "change_object"]
    ((_, visdial),) = benchmark_configs(files("visdial"))
    assert visdial.loader_options() == {}  # VisDial's loader takes no split
    ((_, flickr),) = benchmark_configs(files("flickr30k"))
    assert flickr.split == "test"


@pytest.mark.parametrize("data,message", [
    (files("fashioniq", category="skirt"), "setup.data.category: expected one of dress, shirt, toptee, found 'skirt'"),
    (files("cirr", category="dress"), "setup.data.category is a FashionIQ option"),
    (files("circo", task="change_object"), "setup.data.task is a GeneCIS option"),
    (files("fashioniq", split="test"), "FashionIQ test has no public ground truth"),
    (files("coco"), "setup.data.layout: expected one of"),
])
def test_selection_errors_name_the_field(data, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        benchmark_configs(data)


def test_category_on_the_builtin_benchmark_is_an_error_not_ignored():
    from cirkit.pipelines.setup import Setup, prepare

    with pytest.raises(DataError, match="the built-in benchmark has neither"):
        prepare(None, Setup(DataConfig(category="dress")), {})


def test_test_splits_have_no_ground_truth():
    assert not has_ground_truth(files("cirr", split="test1")) and not has_ground_truth(files("circo", split="test"))
    assert has_ground_truth(files("cirr")) and has_ground_truth(files("circo", split="val"))


def test_protocol_defaults_are_each_benchmarks_official_values():
    auto = RetrievalConfig(exclude_reference=None, subset=None)
    assert resolve_protocol(auto, "cirr").exclude_reference is True
    assert resolve_protocol(auto, "circo").exclude_reference is True
    assert resolve_protocol(auto, "fashioniq").exclude_reference is False
    assert resolve_protocol(auto, "genecis").subset is True and resolve_protocol(auto, "cirr").subset is False
    explicit = RetrievalConfig(exclude_reference=False, subset=False)
    assert resolve_protocol(explicit, "cirr") == explicit, "a value set in the config wins"


def split_with(missing):
    images = tuple(ImageRef(i, f"/img/{i}.png", "" if i in missing else "sha-" + i) for i in "abcdef")
    queries = (ComposedQuery("q0", "a", "x"), ComposedQuery("q1", "b", "y"), ComposedQuery("q2", "c", "z"))
    truths = (Truth(target="d", targets=("d", "e")), Truth(target="e"), Truth(target="f", subset=("f", "b")))
    return Split("circo", "val", Gallery("g", images), queries, truths)


def test_missing_images_fail_with_the_list_or_skip_what_they_touch():
    split = split_with({"e"})
    with pytest.raises(DataError, match=r"1 of 6 images are missing: /img/e.png\. Set setup.data.missing_images"):
        apply_image_policy(MissingImagesConfig(), split)
    kept = apply_image_policy(MissingImagesConfig("skip"), split)
    assert [q.id for q in kept.queries] == ["q2"], "q0 lists e among its valid targets, q1's target is e"
    assert kept.gallery.ids() == ("a", "b", "c", "d", "f") and kept.truths == (split.truths[2],)
    assert selection_report(None, split, kept) == {"queries": 1, "skipped queries": 2, "gallery images": 5,
                                                   "skipped gallery images": 1}
    assert apply_image_policy(MissingImagesConfig(), split_with(set())) == split_with(set())
