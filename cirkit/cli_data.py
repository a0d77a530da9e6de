"""``cirkit data check`` and ``cirkit evaluate``: benchmark files and existing prediction files."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from .data.check import check_split
from .data.errors import DataError
from .data.loaders import BENCHMARKS, default_splits, load_split
from .evaluation.stages import benchmark_metrics
from .evaluation.submissions import read_circo_submission, read_cirr_submission
from .report import metrics_table


def _console():
    from .cli import console

    return console


@click.group()
def data() -> None:
    """Benchmark data in the official layouts."""


@data.command()
@click.argument("name", type=click.Choice(sorted(BENCHMARKS)))
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default=None, help="One split (default: the evaluation splits).")
@click.option("--category", default=None, help="FashionIQ category (default: all three).")
@click.option("--task", default=None, help="GeneCIS task (default: all four).")
@click.option("--no-decode", is_flag=True, help="Only check that image files exist.")
@click.option("--full-decode", is_flag=True, help="Decode every pixel (slow), not only the headers.")
@click.option("--show", default=20, show_default=True, help="How many missing/undecodable files to list.")
def check(name, root, split, category, task, no_decode, full_decode, show) -> None:
    """Count queries and images of NAME under ROOT; list missing and undecodable images."""
    console = _console()
    wanted = {k: v for k, v in (("split", split), ("category", category), ("task", task)) if v is not None}
    variants = [v for v in default_splits(name) if all(v.get(k, val) == val for k, val in wanted.items())] or [{}]
    variants = [{**v, **wanted} for v in variants]
    table = Table(title=f"{name} under {root}")
    for col in ("split", "queries", "with truth", "images", "missing", "undecodable"):
        table.add_column(col, justify="right" if col != "split" else "left")
    problems = []
    for options in variants:
        label = " ".join(str(v) for v in options.values()) or "all"
        try:
            found = load_split(name, root, **options)
        except DataError as exc:
            raise click.ClickException(str(exc)) from None
        report = check_split(found, decode=not no_decode, full_decode=full_decode)
        table.add_row(label, str(report.queries), str(report.with_truth), str(report.images),
                      str(len(report.missing)), str(len(report.undecodable)))
        problems += [f"missing     {p}" for p in report.missing[:show]]
        problems += [f"undecodable {p}: {why}" for p, why in report.undecodable[:show]]
    console.print(table)
    for line in problems[:show]:
        console.print(line)
    if len(problems) > show:
        console.print(f"... and more ({len(problems)} listed at most {show} per split)")
    if problems:
        sys.exit(1)


@click.command()
@click.argument("benchmark", type=click.Choice(["cirr", "circo"]))
@click.option("--annotations", "root", required=True, type=click.Path(exists=True, file_okay=False),
              help="The benchmark's annotation folder (official layout or flat).")
@click.option("--predictions", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A prediction file in the evaluation server's submission format.")
@click.option("--split", default="val", show_default=True, help="A split with public ground truth.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
def evaluate(benchmark, root, predictions, split, as_json) -> None:
    """Score a server-format prediction file on a split with ground truth (no server needed)."""
    try:
        if benchmark == "cirr":
            found = load_split("cirr", root, split=split)
            metric, ranked = read_cirr_submission(predictions, found)
            lists = [ranked[q.id] for q in found.queries]
            if metric == "recall":
                scores = benchmark_metrics(found, lists)
            else:
                scores = benchmark_metrics(found, lists, ks=(1, 2, 3))
                scores = {k.replace("R@", "Rs@"): v for k, v in scores.items()}
        else:
            found = load_split("circo", root, split=split, require_gallery=False)
            ranked = read_circo_submission(predictions, found)
            scores = benchmark_metrics(found, [ranked[q.id] for q in found.queries])
    except (DataError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(scores))
    else:
        _console().print(metrics_table(scores, title=f"{benchmark} {split}: {predictions}"))
