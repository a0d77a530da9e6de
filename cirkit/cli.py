"""The ``cirkit`` command line."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import click
from rich.table import Table
from rich.tree import Tree

from .cli_common import console, err, open_store, store_option
from .data.errors import DataError
from .engine import Store
from .experiment.config import ConfigError
from .experiment.experiment import load_experiment
from .experiment.run_record import RunRecordError, read_run
from .experiment.runner import RunOutcome, run_experiment
from .host_devices import DEMO_DEVICES, configure_host_devices
from .models.config import BackendError
from .ordering import flatten, headline_metrics
from .report import describe_difference, metrics_tables, preview, steps_table, sweep_table


def _run(store: Store, name: str) -> dict | None:
    """A named run's record, checked; a malformed one is a one-line error naming the file and the field."""
    try:
        return read_run(store, name)
    except RunRecordError as exc:
        raise click.ClickException(str(exc)) from None


class _Group(click.Group):
    """Store I/O errors and paths refused for leaving the store are one-line errors, not tracebacks."""

    def invoke(self, ctx: click.Context):
        from .engine.fs import UnsafePath
        from .engine.store import StoreIOError

        try:
            return super().invoke(ctx)
        except (StoreIOError, UnsafePath) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.version_option(package_name="cirkit")
@click.pass_context
def main(ctx: click.Context) -> None:
    """cirkit: reproducible language-guided image retrieval from pure, cached stages."""
    # before anything imports JAX: the demo trains its CLIP data-parallel on 2 CPU devices (CIRKIT_HOST_DEVICES)
    try:
        configure_host_devices(default=DEMO_DEVICES if ctx.invoked_subcommand == "demo" else 1)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@main.command()
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config field (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show per stage what is cached and what would be computed, and why.")
@click.option("--name", default=None, help="Record the run under this name instead of the file's.")
@click.option("--quiet", is_flag=True, help="No progress bars or progress lines.")
@click.option("--replace", is_flag=True,
              help="Overwrite a run of the same name even if its configuration differs (default: keep both).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where item-mapping stages compute their missing shards.")
@click.option("--ray-address", default=None, help="An existing Ray cluster (default: start a local one).")
@store_option
def run(experiment: str, overrides: tuple[str, ...], dry_run: bool, name: str | None, quiet: bool, replace: bool,
        executor: str, ray_address: str | None, store_url: str) -> None:
    """Run an experiment file (every run of its sweep), computing only what the store lacks."""
    try:
        exp = load_experiment(experiment, overrides, name=name)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    store = open_store(store_url)
    backend = None
    if executor == "ray" and not dry_run:
        from .engine.ray_executor import RayExecutor

        backend = RayExecutor(address=ray_address)
    try:
        outcomes = run_experiment(exp, store, dry_run=dry_run, progress=not quiet, executor=backend, replace=replace)
    except BackendError as exc:  # a model server failed: what it answered is cached, the rest is asked next time
        raise click.ClickException(str(exc)) from None
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    for outcome in outcomes:
        _print_outcome(outcome, dry_run)
    if len(outcomes) > 1 and not dry_run:
        points = [(o.name, dict(spec.sweep_point), flatten(o.metrics))
                  for o, spec in zip(outcomes, exp.runs, strict=True) if isinstance(o.metrics, dict)]
        console.print(sweep_table(points, title=f"{exp.name}: {len(points)} runs (named {exp.name}/KEY=VALUE,...)"))


def _print_outcome(outcome: RunOutcome, dry_run: bool) -> None:
    title = f"{'dry run of ' if dry_run else ''}{outcome.name}"
    for note in (v for v in outcome.outputs.values() if isinstance(v, str)):  # e.g. "no metrics, only files"
        console.print(f"[bold]{note}[/bold]")
    console.print(steps_table(outcome.steps, outcome.explanations, title=title))
    if not dry_run:
        if outcome.metrics is not None:
            for table in metrics_tables(outcome.metrics, title=f"results: {outcome.name}"):
                console.print(table)
        console.print(f"[dim]{len(outcome.steps)} steps ({_counts_text(outcome)}), {outcome.seconds:.2f}s; "
                      f"run recorded as {outcome.name!r}[/dim]")
        if outcome.renamed_from:
            err.print(f"[yellow]run {outcome.renamed_from!r} already holds a different configuration or computation "
                      f"(other output keys); this run is recorded as {outcome.name!r} (choose a name with --name, "
                      "or overwrite with --replace)[/yellow]")


def _counts_text(outcome: RunOutcome) -> str:
    """What happened to the steps, each count named for what it is (a fresh store has nothing cached)."""
    c = outcome.counts()
    parts = [f"{c['computed']} computed"]
    if c["cached"]:
        parts.append(f"{c['cached']} cached")
    if c["reused"]:
        parts.append(f"{c['reused']} reused within this run (same inputs as an earlier step)")
    if c["read"]:
        parts.append(f"{c['read']} read from disk")
    return ", ".join(parts)


@main.command()
@click.option("--experiment", default=os.path.join("experiments", "demo.toml"), show_default=True,
              help="The demo's experiment file (the built-in defaults are used if it does not exist).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--steps", is_flag=True, help="Print every step, not only a summary.")
@store_option
def demo(experiment: str, quiet: bool, steps: bool, store_url: str) -> None:
    """Generate the built-in benchmark, train cirkit's CLIP and evaluate the CLIP baselines on all three tasks."""
    import time

    from .experiment.experiment import Experiment, RunSpec
    from .experiment.pipeline import get_pipeline

    start = time.perf_counter()
    if os.path.isfile(experiment):
        try:
            exp = load_experiment(experiment)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    else:
        pipe = get_pipeline("demo")
        exp = Experiment("(built-in defaults)", "demo", pipe.description, pipe, (RunSpec("demo", pipe.config_type()),))
    (outcome,) = run_experiment(exp, open_store(store_url), progress=not quiet)
    if steps:
        console.print(steps_table(outcome.steps, {}, title=outcome.name))
    console.print(f"[bold]cirkit demo[/bold]: {len(outcome.steps)} steps ({_counts_text(outcome)}) "
                  f"in {time.perf_counter() - start:.1f}s")
    for table in metrics_tables(outcome.metrics, title="demo"):
        console.print(table)
    console.print("[dim]The CLIP here is cirkit's own small model trained on the built-in benchmark; numbers are "
                  "not comparable with real CLIP checkpoints.[/dim]")


@main.command(name="ls")
@store_option
def ls_(store_url: str) -> None:
    """List the named runs in the store."""
    store = open_store(store_url)
    table = Table(title=f"runs in {store.location}")
    for col in ("run", "pipeline", "started", "cold compute", "last run", "artifacts", "headline metrics"):
        table.add_column(col, overflow="fold", justify="right" if col in ("cold compute", "last run") else "left")
    for name in store.run_names():
        rec = store.get_run(name) or {}
        row, head = headline_metrics(rec.get("metrics"), rec.get("metric_order"))
        cold = rec.get("cold_seconds")
        text = ", ".join(f"{k} {_num(v)}" for k, v in head.items())
        table.add_row(name, rec.get("pipeline", "?"), rec.get("started", "?"),
                      "?" if cold is None else f"{cold:.1f}s", f"{rec.get('seconds', 0):.1f}s",
                      str(len(rec.get("artifacts", []))), f"{row}: {text}" if row else text)
    console.print(table)


def _num(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


@main.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@store_option
def show(target: str, as_json: bool, store_url: str) -> None:
    """Show a run (its steps and metrics) or an artifact KEY (record, lineage, a preview of the value)."""
    store = open_store(store_url)
    run_record = _run(store, target)
    if run_record is not None:
        if as_json:
            click.echo(json.dumps(run_record, indent=2))
            return
        from .engine import Step

        known = {f.name for f in dataclasses.fields(Step)}
        steps = [Step(**{k: v for k, v in s.items() if k in known}) for s in run_record["steps"]]
        from .reporting.runs import step_costs

        console.print(steps_table(steps, {}, title=f"run {target} ({run_record.get('pipeline')})",
                                  cold=step_costs(store, run_record)))
        console.print(f"run digest {_run_digest(store, target)}", soft_wrap=True)
        if run_record.get("metrics"):
            for table in metrics_tables(run_record["metrics"], title="metrics",
                                        declared=run_record.get("metric_order")):
                console.print(table)
        return
    key = _resolve_key(store, target)
    record = store.get_record(key)
    if record is None:
        raise click.ClickException(f"the record of {key} in {store.location} is corrupt (run `cirkit verify`)")
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    console.print(f"[bold]{record['stage']}[/bold] v{record['version']}  key {key}")
    console.print(f"output {record['output']}  ({record['kind']}, {record['seconds']}s, {record['created']})")
    console.print_json(json.dumps({"config": record["config"]}))
    console.print(_lineage(store, key))
    console.print(preview(store.get_value(record["output"])))


def _run_digest(store: Store, run: str) -> str:
    from .engine.sharing import VerificationError, run_digest

    try:
        return run_digest(store, run)
    except VerificationError as exc:
        return f"unavailable: {exc}"


def _resolve_key(store: Store, prefix: str) -> str:
    if len(prefix) < 4:
        raise click.ClickException(f"{prefix!r} is neither a run nor a key prefix of at least 4 characters")
    names = store.fs.list(f"records/{prefix[:2]}")
    matches = [n[: -len(".json")] for n in names if n.startswith(prefix)]
    if not matches:
        raise click.ClickException(f"no run or artifact key matches {prefix!r} in {store.location}")
    if len(matches) > 1:
        raise click.ClickException(f"{prefix!r} is ambiguous: {', '.join(m[:16] for m in matches[:5])}...")
    return matches[0]


def _lineage(store: Store, key: str) -> Tree:
    def add(node: Tree, key: str, depth: int) -> None:
        rec = store.get_record(key)
        if rec is None or depth > 12:
            return
        for name, parent in sorted(rec.get("input_keys", {}).items()):
            prec = store.get_record(parent)
            label = f"{name} <- {prec['stage'] if prec else '?'} [dim]{parent[:12]}[/dim]"
            add(node.add(label), parent, depth + 1)

    rec = store.get_record(key)
    tree = Tree(f"lineage of {rec['stage']} [dim]{key[:12]}[/dim]")
    add(tree, key, 0)
    return tree


@main.command()
@click.argument("run_name", metavar="RUN")
@click.argument("output")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--part", default=None, help="Write only this key of a dict-valued output (e.g. recall_subset).")
@store_option
def export(run_name: str, output: str, path: str, part: str | None, store_url: str) -> None:
    """Write a run's named OUTPUT (e.g. metrics, submission) to PATH as JSON."""
    from .engine.codec import describe

    store = open_store(store_url)
    record = _run(store, run_name)
    if record is None:
        raise click.ClickException(f"no run named {run_name!r} in {store.location}")
    if output not in record.get("outputs", {}):
        raise click.ClickException(f"run {run_name!r} has outputs {', '.join(record.get('outputs', {}))}, not {output!r}")
    value = store.get_value(record["outputs"][output]["content"])
    if part is not None:
        if not isinstance(value, dict) or part not in value:
            raise click.ClickException(f"output {output!r} has no part {part!r}")
        value = value[part]
    files = {path: value}
    if part is None and output.startswith("submission") and isinstance(value, dict):
        files = _submission_files(path, value)
    for file, content in files.items():
        with open(file, "w", encoding="utf-8") as f:
            json.dump(content.cirkit_json() if hasattr(content, "cirkit_json") else describe(content), f)
        console.print(f"wrote {output}{'/' + part if part else ''} of {run_name} to {file}")


def _submission_files(path: str, files: dict) -> dict:
    """One server file per part: FILE itself for a single file (CIRCO), FILE.<part>.json for several (CIRR's
    recall and recall_subset)."""
    if len(files) == 1:
        return {path: next(iter(files.values()))}
    stem, ext = os.path.splitext(path)
    return {f"{stem}.{name}{ext or '.json'}": content for name, content in files.items()}


@main.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as one JSON object.")
@click.option("--tolerance", default=1e-3, show_default=True, help="Embeddings closer than this count as equal.")
@store_option
def diff(run_a: str, run_b: str, as_json: bool, tolerance: float, store_url: str) -> None:
    """Compare two runs: config, shared and differing artifacts, metric deltas, rank changes, texts, drift."""
    from .experiment.diff import diff_runs

    store = open_store(store_url)
    for name in (run_a, run_b):
        _run(store, name)
    try:
        report = diff_runs(store, run_a, run_b, tolerance=tolerance)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    if as_json:
        click.echo(json.dumps(report, default=str))
        return
    console.print(f"[bold]{run_a}[/bold] (A) vs [bold]{run_b}[/bold] (B): {len(report['shared'])} steps identical "
                  f"(same key and output), {len(report['differ'])} differ, {len(report['only_a'])} only in A, "
                  f"{len(report['only_b'])} only in B")
    for c in report["config"]:
        console.print(f"config {c['field']}: {c['a']!r} -> {c['b']!r}")
    for d in report["drift"]:
        console.print(f"[red]drift[/red] in {d['step']}: {d['a']} -> {d['b']}")
    if report["environment"]:
        shown = report["environment"][:8]
        more = len(report["environment"]) - len(shown)
        console.print("[yellow]computed under a different environment[/yellow]: " + "; ".join(shown)
                      + (f"; and {more} more (--json lists all)" if more > 0 else ""))
    table = Table(title="differing steps")
    for col in ("step", "why", "what differs"):
        table.add_column(col, overflow="fold")
    for d in report["differ"]:
        content = d.get("content")
        summary = describe_difference(content, tolerance) if content else ("same output" if d["same_content"] else "")
        table.add_row(d["step"], "; ".join(d["why"]) or ("same content" if d["same_content"] else ""), summary)
    console.print(table)
    for step, changes in report["rank_changes"].items():
        if "moved" in changes:
            console.print(f"{step}: the target's rank changed in {changes['moved']} queries "
                          f"({changes['better']} ranked higher in B, {changes['worse']} lower)")
    if report["metrics"]:
        mt = Table(title="metric deltas")
        for col in ("metric", "a", "b", "delta"):
            mt.add_column(col, justify="right" if col != "metric" else "left")
        for m in report["metrics"]:
            mt.add_row(m["metric"], _num(m["a"]), _num(m["b"]), "" if m["delta"] is None else f"{m['delta']:+.2f}")
        console.print(mt)


@main.command()
@click.argument("runs", metavar="RUN [RUN ...]", nargs=-1, required=True)
@click.option("-o", "--output", "path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="The HTML file to write (default: report.html).")
@click.option("--query", "queries", multiple=True, metavar="ID", help="Show this query in the grids (repeatable).")
@click.option("--examples", default=4, show_default=True, help="Queries per grid section (wins, losses, sample).")
@click.option("--top-k", "k", default=5, show_default=True, help="Thumbnails per run and query.")
@store_option
def report(runs: tuple[str, ...], path: str | None, queries: tuple[str, ...], examples: int, k: int,
           store_url: str) -> None:
    """Write one self-contained HTML page comparing RUNs (the first is the baseline of deltas): configuration
    differences, versions, metrics side by side, plots, per-query grids with thumbnails, cold per-step cost."""
    from .html_report import report_html

    if path is None and len(runs) > 1 and runs[-1].endswith(".html"):  # the older form: cirkit report RUN FILE.html
        runs, path = runs[:-1], runs[-1]
    path = path or "report.html"
    store = open_store(store_url)
    for name in runs:
        _run(store, name)
    try:
        page = report_html(store, list(runs), queries=queries, examples=examples, k=k)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    console.print(f"wrote {path} ({len(page) / 1024:.0f} KiB, {len(runs)} run{'s' if len(runs) > 1 else ''})")


@main.command(name="plot-sweep")
@click.argument("sweep")
@click.option("-o", "--output", "path", type=click.Path(dir_okay=False, writable=True), required=True,
              help="The PNG file to write.")
@click.option("--metric", default=None, help="The metric to plot (default: the runs' first headline metric).")
@store_option
def plot_sweep(sweep: str, path: str, metric: str | None, store_url: str) -> None:
    """Plot a metric against the swept value for the runs of SWEEP (named SWEEP/KEY=VALUE,...) as a PNG."""
    from .reporting.sweeps import sweep_png

    store = open_store(store_url)
    names = [n for n in store.run_names() if n.startswith(sweep + "/")]
    png = sweep_png([store.get_run(n) or {} for n in names], metric)
    if png is None:
        raise click.ClickException(f"no sweep over a numeric value named {sweep!r} in {store.location} "
                                   f"({len(names)} runs named {sweep}/...)")
    with open(path, "wb") as f:
        f.write(png)
    console.print(f"wrote {path} ({len(names)} runs)")


def _register() -> None:
    from .cli_data import data, evaluate
    from .cli_store import gc, pull, push, status, verify

    for command in (data, evaluate, push, pull, status, verify, gc):
        main.add_command(command)


_register()


if __name__ == "__main__":  # pragma: no cover
    main()
