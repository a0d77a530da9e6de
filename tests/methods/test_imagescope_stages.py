"""ImageScope's helper stages on hand-made inputs, with expected rankings computed by hand: the order in which
stage 2 asks the verifier must be the order in which it reads the verdicts back."""

import numpy as np

from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split, Truth
from cirkit.methods.imagescope.stages import RerankConfig, rerank_by_propositions, verification_inputs
from cirkit.models.roles import Answers
from cirkit.retrieval.ranking import Ranking
from cirkit.retrieval.stages import SubsetOrderConfig, restrict_to_subset

GALLERY = Gallery("g", tuple(ImageRef(f"g{i}", f"/nowhere/g{i}.png") for i in range(10)))


def split(subsets=None):
    queries = (ComposedQuery("q0", "g0", "a dog, no cat"), ComposedQuery("q1", "g9", "make it red"))
    truths = None
    if subsets:
        truths = tuple(Truth(target=s[1], subset=s) for s in subsets)
    return Split("cirr", "val", GALLERY, queries, truths)


def answers(values):
    n = len(values)
    return Answers(tuple(values), (True,) * n, ("",) * n, (None,) * n, ("m",) * n)


def ranking(rows):
    idx = np.array(rows, np.int64)
    return Ranking(("q0", "q1"), tuple(im.id for im in GALLERY.images), idx,
                   -np.arange(idx.size, dtype=np.float32).reshape(idx.shape))


# What each image shows, which a truthful verifier reports.
SHOWS = {"g5": {"grass"}, "g6": {"dog"}, "g7": {"dog", "cat"}, "g3": {"red"}}
QUESTIONS = {"Is there a dog?": "dog", "Is there a cat?": "cat", "Is it red?": "red"}


def test_verdicts_are_read_back_in_the_order_they_were_asked():
    props = answers([
        {"propositions": [{"question": "Is there a dog?", "answer": "yes"}, {"question": "Is there a cat?", "answer": "no"}]},
        {"propositions": [{"question": "Is it red?", "answer": "yes"}]},
    ])
    r = ranking([[5, 6, 7, 8], [1, 2, 3, 4]])
    config = RerankConfig(top_k=3, alpha=1)
    inputs = verification_inputs.fn(config, split(), r, props)
    asked = [(inp.images[0].id, dict(inp.fields)["question"]) for inp in inputs]
    assert asked == [("g5", "Is there a dog?"), ("g5", "Is there a cat?"), ("g6", "Is there a dog?"),
                     ("g6", "Is there a cat?"), ("g7", "Is there a dog?"), ("g7", "Is there a cat?"),
                     ("g1", "Is it red?"), ("g2", "Is it red?"), ("g3", "Is it red?")]
    verdicts = answers([QUESTIONS[q] in SHOWS.get(image, set()) for image, q in asked])
    out = rerank_by_propositions.fn(config, r, props, verdicts)
    # q0: g5 1 match (no cat), g6 2 (dog, no cat), g7 1 (dog) -> g6, g5, g7; g8 beyond top_k stays put.
    # q1: only g3 is red -> g3, g1, g2; g4 stays.
    assert out.indices.tolist() == [[6, 5, 7, 8], [3, 1, 2, 4]]
    assert out.scores[0].tolist() == [r.scores[0, 1], r.scores[0, 0], r.scores[0, 2], r.scores[0, 3]], \
        "scores travel with their candidates"


def test_restrict_to_subset_follows_the_ranking_and_drops_the_reference():
    s = split(subsets=[("g0", "g2", "g4", "g6", "g8", "g1"), ("g9", "g3", "g5", "g7", "g1", "g2")])
    r = ranking([[6, 0, 3, 2], [5, 9, 4, 8]])  # q0's reference g0 ranked second; q1's g9 second
    out = restrict_to_subset.fn(SubsetOrderConfig(k=3), s, r)
    # q0: ranked members minus the reference: g6, g2; then the rest in listed order: g4.
    # q1: ranked members: g5; then listed order minus the reference: g3, g7.
    assert out.indices.tolist() == [[6, 2, 4], [5, 3, 7]]
