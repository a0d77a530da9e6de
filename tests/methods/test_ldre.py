"""LDRE/SEIZE without a world: the ensemble's arithmetic and the importer of published caption/rewrite files
(a small file written here in the published format: the benchmark's entries plus ``multi_caption_opt`` and
``multi_gpt-3.5_opt``)."""

import json

import numpy as np
import pytest

from cirkit.data.errors import DataError
from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split
from cirkit.engine import Engine, Store
from cirkit.methods.ldre import (
    ColumnConfig,
    EnsembleConfig,
    PublishedConfig,
    ensemble_queries,
    member_weights,
    published_column,
    read_published,
)


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_mean_ensemble_is_the_normalised_mean_of_unit_members(tmp_path):
    a, b = unit([[3.0, 0, 0], [0, 1, 0]]), unit([[0, 4.0, 0], [0, 0, 1]])
    got = Engine(Store(str(tmp_path)), progress=False).run(ensemble_queries, EnsembleConfig("mean"), rewrites=(a * 3, b),
                                                           captions=(a, b), gallery=np.eye(3, dtype=np.float32)).value
    np.testing.assert_allclose(got, unit(a + b), atol=1e-6)  # scale of a member does not weigh it


def test_weighted_ensemble_favours_the_member_whose_rewrite_moves_away_from_its_caption():
    gallery = unit(np.eye(4))
    caption = unit([[1.0, 0, 0, 0]])
    kept = unit([[1.0, 0.1, 0, 0]])  # barely edited: small drops
    edited = unit([[0.1, 0, 1.0, 0]])  # edited away from what the caption matched: a large drop
    config = EnsembleConfig("weighted", temperature=0.04, top_k=1)
    w = member_weights(config, [kept, edited], [caption, caption], gallery)
    assert w[1, 0] > 0.99 and w.sum(axis=0) == pytest.approx(1.0)  # softmax(drop / max drop / 0.04)
    flat = member_weights(EnsembleConfig("weighted", temperature=100.0, top_k=1), [kept, edited], [caption, caption],
                          gallery)
    assert flat[0, 0] == pytest.approx(0.5, abs=0.01)  # a high temperature tends to the mean


def test_split_scope_gives_every_query_the_same_member_weights_and_query_scope_does_not():
    gallery = unit(np.eye(3))
    caption = unit([[1.0, 0, 0], [0, 1.0, 0]])
    first = unit([[0, 0, 1.0], [0, 1.0, 0.05]])  # moves query 0 away, keeps query 1
    second = unit([[1.0, 0, 0.05], [1.0, 0, 0]])  # keeps query 0, moves query 1 away
    split = member_weights(EnsembleConfig(top_k=1, scope="split"), [first, second], [caption, caption], gallery)
    query = member_weights(EnsembleConfig(top_k=1, scope="query"), [first, second], [caption, caption], gallery)
    np.testing.assert_allclose(split[:, 0], split[:, 1])
    assert query[0, 0] > 0.9 and query[1, 1] > 0.9


def test_seize_increment_ranks_as_score_after_plus_increment_times_the_score_difference(tmp_path):
    rng = np.random.default_rng(0)
    gallery, after, before = unit(rng.normal(size=(30, 8))), unit(rng.normal(size=(5, 8))), unit(rng.normal(size=(5, 8)))
    q = Engine(Store(str(tmp_path)), progress=False).run(ensemble_queries, EnsembleConfig("mean", increment=0.7),
                                                         rewrites=(after,), captions=(before,), gallery=gallery).value
    score = after @ gallery.T + 0.7 * (after @ gallery.T - before @ gallery.T)
    assert (np.argsort(-(q @ gallery.T), axis=1) == np.argsort(-score, axis=1)).all()
    plain = after @ gallery.T
    assert not (np.argsort(-plain, axis=1) == np.argsort(-score, axis=1)).all()  # the increment changes rankings


def split_of(ids):
    images = tuple(ImageRef(f"img{i}", f"/nowhere/img{i}.png") for i in range(3))
    return Split("circo", "test", Gallery("g", images), tuple(ComposedQuery(i, "img0", "is red") for i in ids))


def published(tmp_path, entries):
    path = tmp_path / "test_multi_gpt3-5.json"
    path.write_text(json.dumps(entries))
    return str(path)


ENTRIES = [{"reference_img_id": 0, "relative_caption": "is red", "shared_concept": "a car", "id": q,
            "multi_caption_opt": [f"car {q} a", f"car {q} b"], "multi_gpt-3.5_opt": [f"red car {q} a", f"red car {q} b"]}
           for q in (7, 3)]


def test_importer_matches_entries_to_queries_by_id_and_reads_columns(tmp_path):
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    table = engine.run(read_published, PublishedConfig(published(tmp_path, ENTRIES)), split=split_of(("3", "7")))
    column = lambda cfg, t, step: engine.run(published_column, cfg, texts=t, step=step).value  # noqa: E731
    assert column(ColumnConfig("captions", 1), table, "c1") == ("car 3 b", "car 7 b")
    assert column(ColumnConfig("rewrites", 0), table, "r0") == ("red car 3 a", "red car 7 a")
    nested = [dict(e, **{"multi_gpt-3.5_opt": [["x", "y"], ["z", "w"]]}) for e in ENTRIES]
    table = engine.run(read_published, PublishedConfig(published(tmp_path, nested)), split=split_of(("7",)), step="n")
    assert column(ColumnConfig("rewrites", 1, 1), table, "r11") == ("w",)


@pytest.mark.parametrize("entries, ids, message", [
    ([{k: v for k, v in ENTRIES[0].items() if k != "multi_caption_opt"}], ("7",), "entry 0 (query 7): field 'multi_caption_opt' is missing"),
    (ENTRIES, ("7", "99"), "no entry for query '99'"),
    ([dict(ENTRIES[0], **{"multi_gpt-3.5_opt": ["only one"]})], ("7",), "expected one rewrite (or list) per caption"),
    ([dict(ENTRIES[0], **{"multi_caption_opt": "one string"})], ("7",), "expected a non-empty list of strings"),
])
def test_importer_errors_name_the_file_the_entry_and_the_field(tmp_path, entries, ids, message):
    path = published(tmp_path, entries)
    with pytest.raises(DataError) as err:
        Engine(Store(str(tmp_path / "store")), progress=False).run(read_published, PublishedConfig(path), split=split_of(ids))
    assert str(err.value).startswith(path) and message in str(err.value) and "\n" not in str(err.value)


def test_asking_for_more_captions_than_published_is_a_clear_error(tmp_path):
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    table = engine.run(read_published, PublishedConfig(published(tmp_path, ENTRIES)), split=split_of(("7",)))
    with pytest.raises(DataError, match="has 2 captions; the config asks for more"):
        engine.run(published_column, ColumnConfig("captions", 2), texts=table)
