"""Which part of a trained CIR-CoT is weak: the chain of thought it writes, or the embedding after it?

For the model of an experiment file (everything read from the store: run ``cirkit run`` first), embeds each
composed query three ways and scores them like the pipeline: with the model's own generated CoT (the method;
the run's cached step), with the *exact* scene-graph CoT of the query (what the embedding token was trained
on), and with no CoT at all ([edit, EMB]). Also scores the generated CoTs' caption against the reference's
scene (see ``cir_cot_captions.score``). Usage (from the repository root):

    python bench/cir_cot_exact.py experiments/cir_cot.toml --store STORE --set setup.train.steps=250
"""

from __future__ import annotations

import argparse
import sys

from cir_cot_captions import score as caption_score

from cirkit.annotation.cot import render_cot
from cirkit.annotation.cot_scenes import cot_from_scenes
from cirkit.builtin.stages import generate_builtin
from cirkit.encoders.stages import composed_inputs, embed_images, embed_queries, reference_model
from cirkit.engine import Engine, Store
from cirkit.experiment.experiment import load_experiment
from cirkit.methods.baselines import gallery_images
from cirkit.methods.cir_cot.stages import generate_cot, with_reasoning
from cirkit.pipelines import trained
from cirkit.pipelines.scoring import score
from cirkit.pipelines.trained import CIRCoTExperiment


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment")
    parser.add_argument("--store", required=True)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    config = load_experiment(args.experiment, tuple(args.set)).runs[0].config  # a cir_cot experiment
    setup = config.setup
    engine = Engine(Store(args.store), progress=False)
    model, (part,) = _trained_model(engine, config)
    run = part.engine.run
    queries = run(composed_inputs, None, split=part.split, step="cir_cot/queries")
    gallery = run(embed_images, setup.embed, model=model, step="cir_cot/embed_gallery",
                  images=run(gallery_images, None, split=part.split, step="gallery"))
    files = engine.run(generate_builtin, setup.benchmark, step="world_files")
    exact = run(cot_from_scenes, None, files=files, split=part.split, step="exact_cot").value
    split = part.split.value
    by_query = {a.query: a for a in exact.items}
    texts = tuple(render_cot(by_query[q.id].caption, by_query[q.id].reasoning, by_query[q.id].conclusion)
                  for q in split.queries)
    generated = run(generate_cot, setup.embed, queries=queries, model=model, step="cir_cot/reasoning")
    rows = {}
    for name, reasoning in (("generated", generated), ("exact", texts)):
        q = run(with_reasoning, None, queries=queries, reasoning=reasoning, step=f"{name}/reasoned")
        embedded = run(embed_queries, setup.embed, queries=q, model=model, step=f"{name}/embed_queries")
        rows[name] = score(setup, config.retrieval, part, embedded, gallery, name)[1]["metrics"].value
    embedded = run(embed_queries, setup.embed, queries=queries, model=model, step="none/embed_queries")
    rows["no CoT"] = score(setup, config.retrieval, part, embedded, gallery, "none")[1]["metrics"].value
    for name, metrics in rows.items():
        print(f"{name:10s}", {k: round(float(v), 2) for k, v in metrics.items() if k.startswith(("R@", "Rs@"))})
    truth = [by_query[q.id].caption for q in split.queries]
    caps = [g.split("Caption:", 1)[-1].split("Reasoning:", 1)[0] for g in generated.value]
    print("generated captions vs reference scene", {k: round(v, 3) for k, v in caption_score(caps, truth).items()},
          f"all start with 'Caption:': {sum(g.startswith('Caption:') for g in generated.value)}/{len(caps)}")
    kinds = [(edit_kind(g), edit_kind(t)) for g, t in zip(generated.value, texts)]
    same = sum(g == t for g, t in kinds)
    print(f"reasoning states the edit's kind: {same}/{len(kinds)}; its whole first sentence exactly: "
          f"{sum(first_sentence(g) == first_sentence(t) for g, t in zip(generated.value, texts))}/{len(kinds)}; "
          f"kinds generated: {_counts(g for g, _ in kinds)}, exact: {_counts(t for _, t in kinds)}")
    concl = [g.split("Conclusion:", 1)[-1] for g in generated.value]
    truth_concl = [by_query[q.id].conclusion for q in split.queries]
    print("generated conclusions vs the exact one", {k: round(v, 3) for k, v in caption_score(concl, truth_concl).items()})
    for g, t in list(zip(generated.value, texts))[:3]:
        print("exact:", t.replace("\n", " | "), "\n  gen:", g.replace("\n", " | "))


_KINDS = (("background", "background must change"), ("count", "there must be two"), ("add", "must be added"),
          ("move", "must go from"), ("remove", "must disappear"), ("shape", "must become a "),
          ("colour", "must become "))


def edit_kind(reasoning: str) -> str | None:
    """The edit kind a reasoning's first sentence states (scene-graph CoT wording), None if none."""
    first = reasoning.split("Reasoning:", 1)[-1].split("Conclusion:", 1)[0].split(". ")[0]
    return next((kind for kind, words in _KINDS if words in first), None)


def first_sentence(reasoning: str) -> str:
    return reasoning.split("Reasoning:", 1)[-1].split("Conclusion:", 1)[0].strip().split(". ")[0]


def _trained_model(engine: Engine, config: CIRCoTExperiment):
    """The exported CIR-CoT model and the evaluation's parts (every stage a cache hit after ``cirkit run``)."""
    from cirkit.builtin.files import export_files
    from cirkit.methods.cir_cot.align import aligned
    from cirkit.methods.cir_cot.stages import export_cir_cot, train_cir_cot
    from cirkit.mllm.data import reasoned_triplets
    from cirkit.training import fit

    parts, clip, llm = trained.frozen_bases(engine, config.setup, config.llm)
    split, files = trained.train_split(engine, config.setup, config.train_data)
    annotations = trained._annotations(engine, config, split, files)
    triplets = engine.run(reasoned_triplets, config.cot.tokenisation(), split=split, annotations=annotations,
                          llm=llm, vision=clip)
    start = aligned(engine, config.cot, config.trainer, data=triplets,
                    captions=trained.alignment_captions(engine, config, llm, clip))
    checkpoint = fit(engine, train_cir_cot, config.cot, config.trainer, data=triplets, start=start)
    out = engine.run(export_cir_cot, config.cot, checkpoint=checkpoint, data=triplets, vision=clip)
    folder = engine.run(export_files, config.setup.export, files=out, step="export_cir_cot_folder")
    return engine.run(reference_model, None, kind="cir_cot", directory=folder, step="cir_cot_model"), parts


def _counts(items) -> dict:
    out: dict = {}
    for item in items:
        out[str(item)] = out.get(str(item), 0) + 1
    return dict(sorted(out.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
