"""Does CIR-CoT's aligned start verbalise the image? Greedy captions of held-out images, scored against the scene.

Runs (or reads from the store) the connector alignment of an experiment file, builds CIR-CoT's aligned step-0
model, greedily captions the first ``--images`` images of the built-in world's t2i *test* split (never trained
on by CLIP or the alignment) after [visual prompt, "Describe this image:"], and scores each caption against the
image's true caption: the first object's colour, its shape, both, and the background (chance: 1/6, 1/5, 1/30,
1/5). Usage (from the repository root):

    python bench/cir_cot_captions.py experiments/cir_cot.toml --store STORE --set setup.train.steps=250 \\
        [--set cot.align.objective=contrastive] [--images 40]
"""

from __future__ import annotations

import argparse
import re
import sys

import jax.numpy as jnp

from cirkit.builtin.scenes import BACKGROUNDS, COLOURS, SHAPES
from cirkit.data.stage import BenchmarkConfig, load_benchmark
from cirkit.engine import Engine, Store
from cirkit.experiment.experiment import load_experiment
from cirkit.lm.generate import greedy_generate
from cirkit.methods.cir_cot.align import aligned
from cirkit.methods.cir_cot.stages import cot_task
from cirkit.mllm.data import reasoned_triplets
from cirkit.mllm.loading import task_ids, tokenizer_of
from cirkit.mllm.model import prefix_embeddings
from cirkit.mllm.vision import load_vision
from cirkit.pipelines.embedded import builtin_world
from cirkit.pipelines.parts import PrefixedEngine
from cirkit.pipelines.trained import _annotations, alignment_captions, frozen_bases, train_split
from cirkit.training.checkpoint import unflatten

_OBJECT = re.compile(rf"({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})")
_BACKGROUND = re.compile(rf"on an? ({'|'.join(BACKGROUNDS)}) background")


def parse(text: str) -> tuple[tuple[str, str] | None, str | None]:
    """(colour, shape) of the first object named, and the background (None where absent)."""
    obj, bg = _OBJECT.search(text), _BACKGROUND.search(text)
    return (obj.groups() if obj else None), (bg.group(1) if bg else None)


def score(generated: list[str], truth: list[str]) -> dict[str, float]:
    hits = {"colour": 0, "shape": 0, "object": 0, "background": 0}
    for g, t in zip(generated, truth):
        (go, gb), (to, tb) = parse(g), parse(t)
        if go and to:
            hits["colour"] += go[0] == to[0]
            hits["shape"] += go[1] == to[1]
            hits["object"] += go == to
        hits["background"] += gb is not None and gb == tb
    return {k: v / len(truth) for k, v in hits.items()}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment")
    parser.add_argument("--store", required=True)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=24)
    args = parser.parse_args(argv)
    config = load_experiment(args.experiment, tuple(args.set)).runs[0].config  # a cir_cot experiment
    engine = Engine(Store(args.store))
    _, clip, llm = frozen_bases(engine, config.setup, config.llm)
    split, files = train_split(engine, config.setup, config.train_data)
    triplets = engine.run(reasoned_triplets, config.cot.tokenisation(), split=split,
                          annotations=_annotations(engine, config, split, files), llm=llm, vision=clip)
    start = aligned(engine, config.cot, config.trainer, data=triplets,
                    captions=alignment_captions(engine, config, llm, clip)).value
    world = builtin_world(PrefixedEngine(engine, "eval"), config.setup.benchmark, config.setup.train,
                          config.setup.export)
    test = engine.run(load_benchmark, BenchmarkConfig("builtin_t2i", split="test"), root=world.root,
                      step="load_t2i_test").value
    paths = {im.id: im.path for im in test.gallery.images}
    pairs = [(q.text, paths[t.target]) for q, t in zip(test.queries, test.truths)][:args.images]
    task, _ = cot_task(config.cot, triplets.value)
    params = {**task.init(), **unflatten({k: jnp.asarray(v) for k, v in start.params.items()})}
    features = load_vision(clip.value.path, clip.value.digest).states_of_files([p for _, p in pairs])
    tok = tokenizer_of(llm.value if hasattr(llm, "value") else llm)
    model = config.cot.model
    prefix, _ = prefix_embeddings(model, task.bb, params, jnp.asarray(features), ())
    prompt = list(task_ids(tok, config.cot.texts.target_task))
    out = greedy_generate(params["llm"], task.bb.lm, [prompt] * len(pairs), args.tokens, soft_prompt=prefix,
                          lora=params.get("lora"), lora_scale=model.lora.scale)
    generated = [tok.decode(ids) for ids in out]
    for (truth, _), text in list(zip(pairs, generated))[:8]:
        print(f"truth: {truth}\n  gen: {text!r}")
    print("objective", config.cot.align.objective, "n_queries", model.n_queries, "images", len(pairs),
          {k: round(v, 3) for k, v in score(generated, [t for t, _ in pairs]).items()})


if __name__ == "__main__":
    main(sys.argv[1:])
