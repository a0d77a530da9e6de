"""The oracle backends answer from the built-in benchmark's exported files (scenes.json, edits.json): right
at noise 0, wrong at the configured rate otherwise (seeded, nested across noise levels), labelled oracle."""

import json
import shutil

import pytest

from cirkit.builtin.benchmark import BuiltinConfig, generate_files
from cirkit.builtin.scenes import caption
from cirkit.data.model import ImageRef
from cirkit.models.backends.oracle import OracleBackend, OracleWorld
from cirkit.models.config import BackendConfig, BackendError
from cirkit.models.requests import ChatRequest, Decoding, Message


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A small built-in benchmark written to disk (no CLIP needed)."""
    root = tmp_path_factory.mktemp("builtin")
    config = BuiltinConfig(n_train=5, n_t2i=5, n_composed=60, n_chat=2, n_chat_distractors=2)
    for name, data in generate_files(config).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def image(folder, name):
    return ImageRef(name, str(folder / "images" / f"{name}.png"))


def request(role, fields=(), images=(), seed=0):
    return ChatRequest(role, "t", "h", (Message("user", "prose the oracle ignores", tuple(images)),), tuple(fields),
                       Decoding(seed=seed))


def ask(folder, requests, noise=0.0):
    return OracleBackend(BackendConfig("oracle", model=str(folder), noise=noise)).complete(requests)


def queries(folder):
    return json.loads((folder / "captions" / "cap.rc2.val.json").read_text())


def test_every_role_answers_from_the_scene_graphs(folder):
    world = OracleWorld(str(folder))
    items = queries(folder)
    refs = [image(folder, q["reference"]) for q in items]
    captions = ask(folder, [request("captioner", images=(r,)) for r in refs])
    assert all(c.model.startswith("oracle:") for c in captions)
    assert [c.text for c in captions] == [caption(world.scene_of(q["reference"])) for q in items]

    understood = ask(folder, [request("reasoner", (("instruction", q["caption"]), ("reference", c.text)))
                              for q, c in zip(items, captions)])
    exact = [q for q, u in zip(items, understood) if not json.loads(u.text)["operations"][0].startswith("Addition")]
    assert len(exact) > 20
    for q, u in zip(items, understood):  # edits that pin the target down are described by its caption
        if q in exact:
            assert json.loads(u.text)["descriptions"] == [caption(world.scene_of(q["target_hard"]))]

    props = ask(folder, [request("reasoner", (("instruction", q["caption"]),
                                              ("operations", json.dumps(json.loads(u.text)["operations"]))))
                         for q, u in zip(items, understood)])
    for q, p in zip(items, props):
        propositions = json.loads(p.text)["propositions"]
        assert propositions
        members = [m for m in q["img_set"]["members"] if m != q["target_hard"]]
        checks = [(m, pr) for m in [q["target_hard"], *members] for pr in propositions]
        verdicts = ask(folder, [request("verifier", (("question", pr["question"]),), (image(folder, m),))
                                for m, pr in checks])
        holds = {}
        for (m, pr), v in zip(checks, verdicts):
            holds[m] = holds.get(m, True) and (v.text == "Yes") == (pr["answer"] == "yes")
        assert holds[q["target_hard"]], "every proposition holds on the target"
        assert not any(holds[m] for m in members), "some proposition fails on each non-target of the subset"

        judged = ask(folder, [request("evaluator", (("instruction", q["caption"]),),
                                      (image(folder, q["reference"]), image(folder, m)))
                              for m in [q["target_hard"], *members]])
        assert [j.text for j in judged] == ["Yes"] + ["No"] * len(members)
        stitched = ImageRef(f"{q['reference']}+{q['target_hard']}", "unused.png")
        assert ask(folder, [request("evaluator", (("instruction", q["caption"]),), (stitched,))])[0].text == "Yes"


def test_noise_is_seeded_nested_and_at_the_configured_rate(folder):
    items = queries(folder)
    checks = [request("verifier", (("question", f"Is the background {bg}?"),), (image(folder, m),))
              for q in items for m in q["img_set"]["members"] for bg in ("sky", "gray")]
    truth = [r.text for r in ask(folder, checks)]
    wrong = {}
    for noise in (0.1, 0.3):
        answers = [r.text for r in ask(folder, checks, noise)]
        wrong[noise] = {i for i, (a, t) in enumerate(zip(answers, truth)) if a != t}
        assert answers == [r.text for r in ask(folder, checks, noise)], "the same seed gives the same answers"
    n = len(checks)  # 720 draws: the rate is within 4 standard deviations
    assert abs(len(wrong[0.1]) / n - 0.1) < 4 * (0.1 * 0.9 / n) ** 0.5
    assert abs(len(wrong[0.3]) / n - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5
    assert wrong[0.1] <= wrong[0.3], "a wrong answer at low noise stays wrong at higher noise"
    reseeded = [request(r.role, r.fields, r.images(), seed=1) for r in checks]
    other = {i for i, (a, t) in enumerate(zip((r.text for r in ask(folder, reseeded, 0.3)), truth)) if a != t}
    assert other != wrong[0.3]


def test_the_oracle_reads_its_facts_from_the_folder(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    scenes = json.loads((copy / "scenes.json").read_text())
    first = sorted(scenes, key=int)[0]
    scenes[first]["background"] = "sky" if scenes[first]["background"] != "sky" else "sand"
    (copy / "scenes.json").write_text(json.dumps(scenes))
    name = f"{int(first):012d}"
    said = ask(copy, [request("captioner", images=(image(copy, name),))])[0].text
    assert said.endswith(f"on a {scenes[first]['background']} background")
    (copy / "edits.json").unlink()
    with pytest.raises(BackendError, match=r"edits.json: the oracle needs"):
        ask(copy, [request("captioner", images=(image(copy, name),))])


def test_a_chat_round_joins_the_previous_description_and_the_new_turn(folder):
    """A perfect reasoner keeps what the dialogue has said: given the previous round's description (not a scene
    caption) and a question/answer, it describes both; with the blank reference of round 0 the turn alone."""
    turn = "what colour is the background? gray"
    chained = ask(folder, [request("reasoner", (("instruction", turn), ("reference", "a picture with a red circle")))])
    assert json.loads(chained[0].text)["descriptions"] == [f"a picture with a red circle, {turn}"]
    first = ask(folder, [request("reasoner", (("instruction", "a picture with a red circle"),
                                              ("reference", "A blank image.")))])
    assert json.loads(first[0].text)["descriptions"] == ["a picture with a red circle"]
