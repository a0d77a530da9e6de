"""``cirkit evaluate``: score an existing prediction file under explicit protocol options (no server needed)."""

from __future__ import annotations

import json

import click

from .cli_common import console
from .data.errors import DataError
from .data.loaders import load_split
from .data.loaders.fashioniq import CATEGORIES
from .data.loaders.genecis import TASKS
from .evaluation import prediction_files as pf
from .report import metrics_table

BENCHMARKS = ("cirr", "circo", "fashioniq", "genecis", "flickr30k", "mscoco", "visdial")
DEFAULT_SPLIT = {"cirr": "val", "circo": "val", "fashioniq": "val", "flickr30k": "test", "mscoco": "test"}


def _ks(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 1,5,10, found {text!r}") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter(f"every K must be a positive integer, found {text!r}")
    return ks


def score_file(benchmark: str, root: str, predictions: str, *, split: str | None = None,
               categories: tuple[str, ...] = (), task: str | None = None, reference: str | None = None,
               duplicates: str = "once", ks: tuple[int, ...] | None = None) -> pf.Scored:
    """The library call behind the command (see ``cirkit.evaluation.prediction_files``)."""
    unused = [name for name, given, applies in (
        ("--reference", reference is not None, ("cirr", "fashioniq")), ("--duplicates", duplicates != "once", ("circo",)),
        ("--category", bool(categories), ("fashioniq",)), ("--task", task is not None, ("genecis",)),
        ("--split", split is not None, tuple(DEFAULT_SPLIT))) if given and benchmark not in applies]
    if unused:
        raise DataError(f"{benchmark}: {', '.join(unused)} does not apply to this benchmark")
    split = split or DEFAULT_SPLIT.get(benchmark)
    if benchmark == "cirr":
        return pf.score_cirr(load_split("cirr", root, split=split), predictions, reference=reference or "remove")
    if benchmark == "circo":
        found = load_split("circo", root, split=split, require_gallery=False)
        return pf.score_circo(found, predictions, duplicates=duplicates, ks=ks or (5, 10, 25, 50))
    if benchmark == "fashioniq":
        splits = {c: load_split("fashioniq", root, split=split, category=c) for c in categories or CATEGORIES}
        return pf.score_fashioniq(splits, predictions, reference=reference or "keep", ks=ks or (10, 50))
    if benchmark == "genecis":
        if task is None:
            raise DataError(f"genecis: --task is required (one of {', '.join(TASKS)})")
        return pf.score_genecis(load_split("genecis", root, task=task), predictions)
    if benchmark in ("flickr30k", "mscoco"):
        return pf.score_text_to_image(load_split(benchmark, root, split=split), predictions, ks=ks or (1, 5, 10))
    return pf.score_visdial(load_split("visdial", root), predictions, k=(ks or (10,))[0])


@click.command()
@click.argument("benchmark", type=click.Choice(BENCHMARKS))
@click.option("--annotations", "root", required=True, type=click.Path(exists=True, file_okay=False),
              help="The benchmark's annotation folder (official layout or flat).")
@click.option("--predictions", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CIRR/CIRCO: the server's submission format; others: {query id: [ranked image ids]}.")
@click.option("--split", default=None, help="The split (default: val; Flickr30K/MSCOCO: test).")
@click.option("--category", "categories", multiple=True, type=click.Choice(CATEGORIES),
              help="FashionIQ category, repeatable (default: all three, with their average).")
@click.option("--task", type=click.Choice(TASKS), default=None, help="GeneCIS task (required for genecis).")
@click.option("--reference", type=click.Choice(["remove", "keep"]), default=None,
              help="Remove the query's reference image from each list before scoring (default: remove for "
                   "CIRR, as its server does; keep for FashionIQ, whose protocol keeps it).")
@click.option("--duplicates", type=click.Choice(["once", "official"]), default="once", show_default=True,
              help="CIRCO: count a repeated id once (at its first place), or every time as the official script does.")
@click.option("--ks", "ks_text", default=None, help="Override the benchmark's K values, e.g. 1,5,10.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics (full precision) as one JSON object.")
def evaluate(benchmark, root, predictions, split, categories, task, reference, duplicates, ks_text, as_json) -> None:
    """Score a prediction file on a split with ground truth; on a split without it, check the file only."""
    try:
        scored = score_file(benchmark, root, predictions, split=split, categories=categories, task=task,
                            reference=reference, duplicates=duplicates, ks=_ks(ks_text))
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in scored.warnings:
        click.echo(f"warning: {line}", err=True)
    if not scored.metrics:
        click.echo(f"{benchmark} {split or DEFAULT_SPLIT.get(benchmark, '')}: no public ground truth; the file was "
                   f"checked ({len(scored.warnings)} warnings), nothing scored", err=True)
    if as_json:
        click.echo(json.dumps(scored.metrics))
    elif scored.metrics:
        console.print(metrics_table(scored.metrics, title=f"{benchmark}: {predictions}"))
