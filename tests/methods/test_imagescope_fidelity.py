"""ImageScope as its official code runs it: descriptions averaged without padding, the official answer keys
and prompt-file format, JSON booleans as expected answers, the stitched stage-3 image, "ANSWER:" lines and
early stop."""

import json

import numpy as np
from PIL import Image

from cirkit.data.model import ComposedQuery, Gallery, ImageRef, Split, TextQuery
from cirkit.methods.imagescope.evaluation import (
    PairsConfig,
    RoundConfig,
    evaluator_images,
    promote_accepted,
    round_inputs,
    stitch_pairs,
    update_accepted,
)
from cirkit.methods.imagescope.stages import (
    DescriptionConfig,
    RerankConfig,
    description_counts,
    descriptions,
    group_rows,
    rerank_by_propositions,
)
from cirkit.models.prompts import PromptConfig, load_template
from cirkit.models.requests import ChatResponse
from cirkit.models.roles import Answers, ParseConfig, parse_answers
from cirkit.retrieval.ranking import Ranking


def answers(values):
    n = len(values)
    return Answers(tuple(values), (True,) * n, ("",) * n, (None,) * n, ("m",) * n)


def test_descriptions_are_averaged_over_what_came_back_not_padded():
    got = answers([{"descriptions": ["a", "b", "c", "d"]}, {"descriptions": ["e"]}, "not an object"])
    official = DescriptionConfig(n=3)
    assert descriptions(official, got, ("F1", "F2", "F3")) == ("a", "b", "c", "e", "F3")
    assert description_counts(official, got, ("F1", "F2", "F3")) == (3, 1, 1)
    padded = DescriptionConfig(n=3, pad=True)
    assert descriptions(padded, got, ("F1", "F2", "F3")) == ("a", "b", "c", "e", "F2", "F2", "F3", "F3", "F3")
    e = np.array([[1, 0], [0, 1], [0, 2], [3, 0], [0, 5]], np.float32)
    rows = group_rows(None, e, (3, 1, 1))
    np.testing.assert_allclose(rows, [[1 / 3, 2 / 3], [1, 0], [0, 1]], atol=1e-6)


def test_official_answer_keys_step1_step2_are_read():
    responses = (ChatResponse(json.dumps({"step1": ["Addition: a dog"], "step2": ["a dog", "a dog on grass"]}), "m"),
                 ChatResponse(json.dumps({"steps": []}), "m"))
    parsed = parse_answers(ParseConfig("json", ("descriptions",), (("step1", "operations"), ("step2", "descriptions"))),
                           responses, "fallback")
    assert parsed.ok == (True, False)
    assert parsed.values[0]["descriptions"] == ["a dog", "a dog on grass"]
    assert parsed.values[0]["operations"] == ["Addition: a dog"]
    plain = parse_answers(ParseConfig("json", ("descriptions",)), responses[:1], "fallback")
    assert plain.ok == (False,), "without the aliases the official keys fail the schema"


def test_official_prompt_files_with_double_bracket_placeholders_load(tmp_path):
    path = tmp_path / "cir_understanding.txt"  # written here in the official format, not copied from anywhere
    path.write_text("Reference: [[REF_IMAGE_DESC]]\nEdit: [[INSTRUCTION]]\nCosts $5, keep {json} braces.\n"
                    'Answer as {"step1": [...], "step2": [...]}\n')
    template = load_template(PromptConfig("imagescope/reasoner_understand", str(path)))
    (role, text), = template.render(reference="a red circle", instruction="make it blue")
    assert role == "user"
    assert text.startswith("Reference: a red circle\nEdit: make it blue\nCosts $5, keep {json} braces.")


def test_expected_answers_given_as_json_true_are_yes():
    r = Ranking(("q",), tuple(f"g{i}" for i in range(3)), np.array([[0, 1, 2]]), np.zeros((1, 3), np.float32))
    props = answers([{"propositions": [{"question": "a dog?", "answer": True}, {"question": "a cat?", "answer": "true"}]}])
    verdicts = answers([False, False, True, True, True, False])  # candidate 1 answers yes/yes, 2 yes/no
    assert rerank_by_propositions(RerankConfig(top_k=3), r, props, verdicts).indices.tolist() == [[1, 2, 0]]


def test_evaluator_answer_line_is_the_last_answer():
    responses = (ChatResponse("The ball is red, not blue... ANSWER: No.\nWait, it is blue.\nANSWER: Yes", "m"),
                 ChatResponse("Reasoning. **ANSWER:** no", "m"), ChatResponse("Yes, it matches.", "m"),
                 ChatResponse("I cannot tell.", "m"))
    parsed = parse_answers(ParseConfig("answer_line"), responses, False)
    assert parsed.values == (True, False, True, False) and parsed.ok == (True, True, True, False)


def split_with_images(tmp_path, composed=True):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    images = []
    for i, c in enumerate(colours):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (20, 10), c).save(path)
        images.append(ImageRef(str(i), str(path)))
    queries = ((ComposedQuery("q0", "0", "edit"), ComposedQuery("q1", "1", "edit")) if composed
               else (TextQuery("q0", "text"), TextQuery("q1", "text")))
    return Split("builtin", "test", Gallery("g", tuple(images)), queries)


def test_stitched_image_has_the_reference_left_and_the_candidate_right(tmp_path):
    split = split_with_images(tmp_path)
    ranking = Ranking(("q0", "q1"), tuple(str(i) for i in range(5)), np.array([[2, 3, 4], [4, -1, -1]]),
                      np.zeros((2, 3), np.float32))
    config = PairsConfig(alpha=2, size=16)
    files = dict(stitch_pairs(config, split, ranking).items())
    assert sorted(files) == ["0+2.png", "0+3.png", "1+4.png"]
    folder = tmp_path / "stitched"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    stitched = np.asarray(Image.open(folder / "0+3.png"))
    assert stitched.shape == (16, 32, 3), "each half resized to size x size"
    assert stitched[8, 4].tolist() == [255, 0, 0] and stitched[8, 28].tolist() == [255, 255, 0]
    images = evaluator_images(config, split, ranking, str(folder))
    assert [[im[0].id for im in row] for row in images] == [["0+2", "0+3"], ["1+4"]]
    assert images[0][0][0].content, "stitched images are identified by content"
    t2i = dict(stitch_pairs(config, split_with_images(tmp_path, composed=False), ranking).items())
    (folder / "t2i.png").write_bytes(t2i["black+2.png"])
    black = np.asarray(Image.open(folder / "t2i.png"))
    assert black[:, :16].max() == 0 and black[8, 28].tolist() == [0, 0, 255], "text-to-image: a black reference"


def run_rounds(images, yes, early_stop):
    """Stage 3's rounds with a scripted evaluator: ``yes`` is the set of (query, rank) it accepts."""
    accepted = (-1,) * len(images)
    asked = []
    for rank in range(3):
        config = RoundConfig(rank, early_stop)
        inputs = round_inputs(config, images, tuple(f"t{q}" for q in range(len(images))), accepted)
        rows = [q for q in range(len(images)) if any(i.fields == (("instruction", f"t{q}"),) for i in inputs)]
        asked += [(q, rank) for q in rows]
        accepted = update_accepted(config, images, accepted, answers([(q, rank) in yes for q in rows]))
    return accepted, asked


def test_stage3_stops_at_the_first_yes_and_promotes_it():
    images = tuple(tuple((ImageRef(f"{q}-{r}", ""),) for r in range(3)) for q in range(3))
    yes = {(0, 1), (0, 2), (1, 0), (1, 2)}
    accepted, asked = run_rounds(images, yes, early_stop=True)
    assert accepted == (1, 0, -1)
    assert asked == [(0, 0), (1, 0), (2, 0), (0, 1), (2, 1), (2, 2)], "no question after a query's first yes"
    all_accepted, all_asked = run_rounds(images, yes, early_stop=False)
    assert all_accepted == accepted and len(all_asked) == 9
    r = Ranking(("a", "b", "c"), tuple(str(i) for i in range(9)), np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 7, 6, 5]]),
                np.zeros((3, 4), np.float32))
    assert promote_accepted(None, r, accepted).indices.tolist() == [[1, 0, 2, 3], [4, 5, 6, 7], [8, 7, 6, 5]]


def test_repetition_penalty_reaches_the_server_only_when_set():
    from cirkit.models.backends.openai_compat import payload
    from cirkit.models.requests import ChatRequest, Decoding, Message

    def body(decoding):
        return payload("m", ChatRequest("captioner", "t", "h", (Message("user", "hi"),), (), decoding))

    assert body(Decoding(max_tokens=2048, repetition_penalty=1.05))["repetition_penalty"] == 1.05
    assert "repetition_penalty" not in body(Decoding())


def test_cirevl_edited_description_answers_are_cut_at_the_blank_line():
    responses = (ChatResponse("Reasoning: swap the colour.\nEdited Description: a blue\n  circle on sand\n\nNote: more", "m"),
                 ChatResponse("edited description: a cat", "m"), ChatResponse("A cat on a mat.", "m"),
                 ChatResponse("Edited Description:   \n\n", "m"))
    parsed = parse_answers(ParseConfig("labelled_line", ("target",), label="Edited Description"), responses, "caption")
    assert parsed.values == ({"target": "a blue circle on sand"}, {"target": "a cat"}, "caption", "caption")
    assert parsed.ok == (True, True, False, False)


def test_per_dataset_reasoner_prompts_have_five_examples_answering_step1_step2():
    import pytest

    for dataset in ("cirr", "circo", "fashioniq"):
        template = load_template(PromptConfig(f"imagescope/{dataset}/reasoner_understand"))
        examples = [text for role, text in template.turns if role == "assistant"]
        assert len(examples) == 5, dataset
        for text in examples:
            answer = json.loads(text)
            assert set(answer) == {"step1", "step2"} and len(answer["step2"]) == 3
            assert all(op.split(": ")[0] in ("Addition", "Removal", "Modification", "Comparison", "Retention")
                       for op in answer["step1"])
        turns = template.render(reference="REF", instruction="EDIT")
        assert turns[-1] == ("user", "Reference image: REF\nRequest: EDIT")
        with pytest.raises(Exception, match="instruction"):
            template.render(reference="REF")


def test_subset_members_a_reranking_misses_follow_by_score_not_listing_order():
    from cirkit.methods.imagescope.stages import subset_by_rank_then_score

    reranked = Ranking(("q",), tuple(str(i) for i in range(9)), np.array([[7, 2, 5]]), np.zeros((1, 3), np.float32))
    by_score = Ranking(("q",), reranked.gallery_ids, np.array([[8, 5, 3, 2, 6]]), np.zeros((1, 5), np.float32))
    out = subset_by_rank_then_score(None, reranked, by_score)
    assert out.indices.tolist() == [[2, 5, 8, 3, 6]], "reached members in re-ranked order, then by stage-1 score"
