"""``cirkit data check`` (benchmark files); ``cirkit evaluate`` lives in ``cli_evaluate``."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from .cli_evaluate import evaluate  # noqa: F401  (registered by cli.py from here)
from .data.check import check_split
from .data.errors import DataError
from .data.loaders import BENCHMARKS, default_splits, load_split


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
    defaults = default_splits(name)
    variants = [v for v in defaults if all(v.get(k, val) == val for k, val in wanted.items())]
    if not variants:  # a split outside the defaults (train): still every category or task the defaults cover
        rest = [tuple((k, x) for k, x in v.items() if k not in wanted) for v in defaults]
        variants = [{**wanted, **dict(r)} for r in dict.fromkeys(rest)] or [{}]
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
