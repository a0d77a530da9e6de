"""CoT annotations: exact text from scene graphs, the role path on the oracle backend (cached per item, parse
failures counted), and the shareable JSON file."""

import json

import pytest

from cirkit.annotation.cot import CotAnnotation, CotAnnotations, import_cot, parse_cot, read_cot_json, write_cot_json
from cirkit.annotation.cot_roles import CotRolesConfig, annotate_with_roles
from cirkit.annotation.cot_scenes import cot_from_scenes, scene_cot
from cirkit.builtin.benchmark import BuiltinConfig
from cirkit.builtin.edits import Edit
from cirkit.builtin.files import ExportConfig, export_files
from cirkit.builtin.scenes import Obj, Scene, caption
from cirkit.builtin.stages import generate_builtin
from cirkit.builtin.train_split import TrainSplitConfig, read_scenes
from cirkit.data.errors import DataError
from cirkit.data.model import Gallery, Split
from cirkit.data.stage import BenchmarkConfig, load_benchmark
from cirkit.engine import Engine, Store
from cirkit.models.config import BackendConfig
from cirkit.models.prompts import PromptConfig
from cirkit.models.roles import EngineRoles, RoleConfig
from cirkit.pipelines.training_data import builtin_train, load_builtin_train

RED = Obj("square", "red", "small", "top left")
BLUE = Obj("circle", "blue", "large", "center")
REF = Scene("gray", (RED, BLUE)).canonical()
HAND_CHECKED = [
    (Edit("colour", RED, "green"),
     "The small red square at the top left must become green; its shape, size and position do not change. "
     "The large blue circle at the center and the gray background stay.",
     "a small green square at the top left and a large blue circle at the center on a gray background"),
    (Edit("move", BLUE, "bottom right"),
     "The large blue circle must go from the center to the bottom right, leaving the center empty. "
     "The small red square at the top left and the gray background stay.",
     "a small red square at the top left and a large blue circle at the bottom right on a gray background"),
    (Edit("remove", BLUE),
     "The large blue circle at the center must disappear, leaving the center empty. "
     "The small red square at the top left and the gray background stay.",
     "a small red square at the top left on a gray background"),
    (Edit("add", value="yellow diamond"),
     "A yellow diamond must be added. The instruction gives neither its size nor its place, so it may be small or "
     "large at any free position (top right, bottom left and bottom right). The small red square at the top left, "
     "the large blue circle at the center and the gray background stay.",
     "a small red square at the top left and a large blue circle at the center and a yellow diamond on a gray "
     "background"),
    (Edit("count", RED),
     "There is one red square and there must be two, so another red square is added; its size and place are open "
     "(any free position: top right, bottom left and bottom right). The small red square at the top left, the large "
     "blue circle at the center and the gray background stay.",
     "a small red square at the top left and a large blue circle at the center and a red square on a gray background"),
    (Edit("background", value="sky"), "The background must change from gray to sky. Every object stays as it is.",
     "a small red square at the top left and a large blue circle at the center on a sky background"),
]


@pytest.mark.parametrize("edit, reasoning, conclusion", HAND_CHECKED, ids=[e.kind for e, *_ in HAND_CHECKED])
def test_scene_graph_cot_of_hand_checked_scenes(edit, reasoning, conclusion):
    caption, got_reasoning, got_conclusion = scene_cot(REF, edit)
    assert REF.objects == (BLUE, RED)  # canonical order differs from the caption's (by position), which the text follows
    assert caption == "a small red square at the top left and a large blue circle at the center on a gray background"
    assert (got_reasoning, got_conclusion) == (reasoning, conclusion)


BENCH = BuiltinConfig(n_train=4, n_t2i=4, n_composed=24, n_chat=2, n_chat_distractors=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    engine = Engine(Store(str(tmp_path_factory.mktemp("store"))), progress=False)
    export = ExportConfig(str(tmp_path_factory.mktemp("export")))
    files = engine.run(generate_builtin, BENCH)
    root = engine.run(export_files, export, files=files, step="export_benchmark")
    train = builtin_train(engine, BENCH, TrainSplitConfig(n_triplets=30), export, benchmark_files=files)
    return engine.store, files, root, train


def test_scene_graph_annotations_of_the_val_queries_conclude_with_the_target(world):
    store, files, root, _ = world
    engine = Engine(store, progress=False)
    split = engine.run(load_benchmark, BenchmarkConfig("cirr", split="val"), root=root)
    cot = engine.run(cot_from_scenes, None, files=files, split=split).value
    scenes = read_scenes(open(f"{root.value}/scenes.json", "rb").read())
    edits = json.loads(open(f"{root.value}/edits.json").read())
    assert [a.query for a in cot.items] == [q.id for q in split.value.queries]
    pinned = 0
    for a, t, e in zip(cot.items, split.value.truths, edits):
        edit = Edit(e["kind"], Obj(*e["target"]) if e["target"] else None, e["value"])
        assert a.ok and a.instruction == edit.text() and a.caption == caption(scenes[int(a.reference)])
        if e["kind"] not in ("add", "count"):
            pinned += 1
            assert a.conclusion == caption(scenes[int(t.target)])
        assert a.caption and a.reasoning and a.render().startswith(f"Caption: {a.caption}\n")
    assert pinned > 5
    circo = engine.run(load_benchmark, BenchmarkConfig("circo", split="val", images_root="images"), root=root,
                       step="circo")
    by_circo = engine.run(cot_from_scenes, None, files=files, split=circo, step="cot_circo").value
    assert [a.conclusion for a in by_circo.items] == [a.conclusion for a in cot.items]


def test_scene_graph_annotations_of_the_train_split_in_the_fashioniq_layout(world):
    store, _, _, train = world
    engine = Engine(store, progress=False)
    split = load_builtin_train(engine, train.root, "fashioniq", "shirt")
    cot = engine.run(cot_from_scenes, None, files=train.files, split=split).value
    assert cot.split == "train" and len(cot.items) == len(split.value.queries) > 0
    scenes = read_scenes(open(f"{train.root.value}/scenes.json", "rb").read())
    for a in cot.items:
        assert len(scenes[int(a.reference)].objects) == 2 and " and keep " in a.instruction
        assert a.caption == caption(scenes[int(a.reference)])


def test_scene_graph_annotations_refuse_a_split_of_other_files(world):
    store, files, _, train = world
    engine = Engine(store, progress=False)
    split = load_builtin_train(engine, train.root, "cirr")
    with pytest.raises(DataError, match="reference image '001000000000' has no scene and edit in these files"):
        engine.run(cot_from_scenes, None, files=files, split=split)


def _oracle_roles() -> CotRolesConfig:
    oracle = BackendConfig("oracle")
    return CotRolesConfig(RoleConfig(oracle, PromptConfig("cot/captioner")), RoleConfig(oracle, PromptConfig("cot/reasoner")))


def test_role_path_on_the_oracle_matches_the_scene_graphs_and_is_cached(world):
    store, _, _, train = world
    engine = Engine(store, progress=False)
    split = load_builtin_train(engine, train.root, "cirr")
    roles = EngineRoles(engine, folders={"captioner": train.root, "reasoner": train.root})
    cot = annotate_with_roles(roles, _oracle_roles(), split).value
    exact = engine.run(cot_from_scenes, None, files=train.files, split=split).value
    assert cot.source.startswith("roles: oracle:") and (cot.caption_fallbacks, cot.reasoning_fallbacks) == (0, 0)
    assert [a.caption for a in cot.items] == [a.caption for a in exact.items]
    assert [a.conclusion for a in cot.items] == [a.conclusion for a in exact.items]
    assert all(a.ok and a.reasoning for a in cot.items)
    again = Engine(store, progress=False)
    roles = EngineRoles(again, folders={"captioner": train.root, "reasoner": train.root})
    assert annotate_with_roles(roles, _oracle_roles(), load_builtin_train(again, train.root, "cirr")).value == cot
    chats = [s for s in again.steps if s.step.endswith("/chat")]
    assert len(chats) == 2 and all(s.status == "hit" for s in chats), [(s.step, s.status) for s in chats]


def test_role_path_counts_what_could_not_be_read(world, tmp_path):
    """An image the captioner does not know gives an error answer: the caption falls back and is counted (a fresh
    store: answers are cached by image content, so the known image's caption would otherwise be reused)."""
    store, _, _, train = world
    split = load_builtin_train(Engine(store, progress=False), train.root, "cirr").value
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    images = list(split.gallery.images)
    first = split.queries[0].reference
    images = [im if im.id != first else type(im)("unknown", im.path.replace(first, "unknown"), im.content) for im in images]
    queries = (type(split.queries[0])(split.queries[0].id, "unknown", split.queries[0].text), *split.queries[1:3])
    broken = Split("cirr", "train", Gallery("g", tuple(images)), queries, split.truths[:3])
    roles = EngineRoles(engine, folders={"captioner": train.root, "reasoner": train.root})
    cot = annotate_with_roles(roles, _oracle_roles(), broken, name="broken").value
    assert (cot.caption_fallbacks, cot.reasoning_fallbacks) == (1, 0)
    assert [a.ok for a in cot.items] == [False, True, True]
    assert cot.cirkit_report() == {"annotations": 3, "usable": 2, "caption fallbacks": 1, "reasoning fallbacks": 0}


def test_json_file_round_trip_and_import_stage(tmp_path):
    items = (CotAnnotation("0", "000000000001", "make it blue", "a red circle", "it changes colour", "a blue circle"),
             CotAnnotation("1", "000000000002", "add a héart", "a square", "", "a square", ok=False))
    cot = CotAnnotations("cirr", "train", "scene graphs", items, caption_fallbacks=0, reasoning_fallbacks=1)
    path = tmp_path / "cot.json"
    write_cot_json(cot, str(path))
    assert read_cot_json(str(path)) == cot
    assert json.loads(path.read_text(encoding="utf-8"))["annotations"][1]["instruction"] == "add a héart"
    engine = Engine(Store(str(tmp_path / "store")), progress=False)
    assert engine.run(import_cot, None, path=str(path)).value == cot


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][1].pop("conclusion"), r"annotations\[1\]: field 'conclusion' is missing"),
    (lambda d: d["annotations"][0].update(caption=3), r"annotations\[0\]: field 'caption': expected str, found int 3"),
    (lambda d: d.update(format="other"), r"top level: field 'format': expected 'cirkit-cot'"),
    (lambda d: d["annotations"][1].update(query="0"), r"annotations\[1\]: field 'query': '0' is annotated twice"),
])
def test_malformed_files_are_named_with_entry_and_field(tmp_path, change, message):
    items = tuple(CotAnnotation(str(i), "r", "t", "c", "r", "c") for i in range(2))
    path = tmp_path / "cot.json"
    write_cot_json(CotAnnotations("cirr", "train", "x", items), str(path))
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=f"{path}: {message}"):
        read_cot_json(str(path))


def test_rendered_cot_parses_back_and_garbage_does_not():
    a = CotAnnotation("0", "r", "t", "a red circle", "it turns blue.\nNothing else changes.", "a blue circle")
    assert parse_cot(a.render()) == {"caption": a.caption, "reasoning": a.reasoning, "conclusion": a.conclusion}
    assert parse_cot("Caption: x\nConclusion: y") is None
    assert parse_cot("a blue circle") is None


def test_a_real_server_reasoner_with_unreadable_answers(world, tmp_path):
    """A scripted OpenAI-compatible server on 127.0.0.1 (a real HTTP server; no real model can run here) answers
    every other request with prose: those reasoning answers fall back to the caption and are counted."""
    from fake_servers import Scripted

    def script(n, body):
        prompt = body["messages"][-1]["content"]
        text = prompt if isinstance(prompt, str) else " ".join(p.get("text", "") for p in prompt)
        instruction = text.split("Requested change: ", 1)[1].split("\n", 1)[0]
        answer = (json.dumps({"reasoning": ["first", "then"], "conclusion": f"wanted: {instruction}"})
                  if "change the background" not in instruction else "Sorry, I cannot tell.")
        return 200, {"model": "scripted-1", "choices": [{"message": {"content": answer}, "finish_reason": "stop"}]}, {}

    server = Scripted(script)
    try:
        store, _, _, train = world
        split = load_builtin_train(Engine(store, progress=False), train.root, "cirr").value
        engine = Engine(Store(str(tmp_path / "store")), progress=False)
        reasoner = BackendConfig("openai", model="scripted", snapshot="s1", base_url=server.url, retries=0)
        config = CotRolesConfig(RoleConfig(BackendConfig("oracle"), PromptConfig("cot/captioner")),
                                RoleConfig(reasoner, PromptConfig("cot/reasoner")))
        roles = EngineRoles(engine, folders={"captioner": train.root})
        cot = annotate_with_roles(roles, config, split).value
    finally:
        server.close()
    background = [a.instruction.startswith("change the background") for a in cot.items]
    assert 0 < sum(background) < len(background)
    assert cot.reasoning_fallbacks == sum(background) and cot.caption_fallbacks == 0
    for a, failed in zip(cot.items, background):
        assert a.ok != failed
        assert (a.reasoning, a.conclusion) == (("", a.caption) if failed else ("first then", f"wanted: {a.instruction}"))
    captions = {a.caption for a in cot.items}
    for body in server.bodies:  # the reasoner read the captioner's caption of the reference
        sent = body["messages"][-1]["content"]
        sent = sent if isinstance(sent, str) else " ".join(p.get("text", "") for p in sent)
        assert sent.split("Reference image: ", 1)[1].split("\n", 1)[0] in captions
