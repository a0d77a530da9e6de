"""Store verbs: ``push``/``pull`` (sharing through any fsspec location), ``status``, ``verify`` and ``gc``."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from .cli_common import console, err, open_store, size_text, store_option
from .engine.maintenance import collect_garbage, store_status, verify_store


@click.command()
@click.argument("run_name", metavar="RUN")
@click.argument("url")
@store_option
def push(run_name: str, url: str, store_url: str) -> None:
    """Copy RUN's records and content to URL (any fsspec location); only what URL lacks is sent."""
    from .engine.sharing import VerificationError, push_run

    try:
        report = push_run(open_store(store_url), open_store(url, "URL"), run_name)
    except (KeyError, VerificationError) as exc:
        raise click.ClickException(str(exc.args[0])) from None
    console.print(f"pushed {run_name} to {url}: {report.files} files, {size_text(report.bytes)}; "
                  f"{report.skipped} entries were already there")
    console.print(f"run digest {report.digest} (pin it: cirkit pull {run_name} URL --expect DIGEST)", soft_wrap=True)


@click.command()
@click.argument("run_name", metavar="RUN")
@click.argument("url")
@click.option("--expect", default=None, metavar="DIGEST", help="Accept only the run with this digest (from push/show).")
@store_option
def pull(run_name: str, url: str, expect: str | None, store_url: str) -> None:
    """Fetch RUN from URL; everything is verified before anything is published into the local store."""
    from .engine.sharing import VerificationError, pull_run

    try:
        report = pull_run(open_store(url, "URL"), open_store(store_url), run_name, expect=expect)
    except (KeyError, VerificationError) as exc:
        raise click.ClickException(str(exc.args[0])) from None
    console.print(f"pulled {run_name} from {url}: {report.files} files, {size_text(report.bytes)}; "
                  f"{report.skipped} entries were already here")


@click.command()
@store_option
def status(store_url: str) -> None:
    """Store size and entry counts."""
    store = open_store(store_url)
    areas = store_status(store)
    table = Table(title=f"store {store.location}")
    table.add_column("area")
    table.add_column("entries", justify="right")
    table.add_column("size", justify="right")
    for area, info in areas.items():
        table.add_row(area, str(info["entries"]), size_text(info["bytes"]))
    table.add_row("runs (named)", str(len(store.run_names())), "")
    table.add_row("total", str(sum(a["entries"] for a in areas.values())), size_text(sum(a["bytes"] for a in areas.values())))
    console.print(table)


@click.command()
@click.option("--repair", is_flag=True, help="Remove corrupt entries so the next run recomputes them.")
@store_option
def verify(repair: bool, store_url: str) -> None:
    """Re-hash every entry; report corrupt ones and exit non-zero if any."""
    store = open_store(store_url)
    checked, problems = verify_store(store, repair=repair)
    incomplete = [p for p in problems if p.what.startswith("incomplete")]
    for p in problems:
        label = "incomplete" if p in incomplete else "corrupt"
        removed = " (removed)" if repair and p not in incomplete and not p.what.startswith("not checked") else ""
        err.print(f"[red]{label}[/red] {p.path}: {p.what.removeprefix('incomplete: ')}{removed}", soft_wrap=True)
    console.print(f"checked {checked} entries: {len(problems) - len(incomplete)} corrupt; runs incomplete: {len(incomplete)}")
    if problems:
        sys.exit(1)


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@store_option
def gc(dry_run: bool, store_url: str) -> None:
    """Remove every entry that no named run reaches, and temporaries an hour old. Not while runs are in progress."""
    from .engine.maintenance import GcRefused

    store = open_store(store_url)
    try:
        doomed, size = collect_garbage(store, dry_run=dry_run)
    except GcRefused as exc:
        raise click.ClickException(str(exc)) from None
    for entry in doomed:
        console.print(f"{'would remove' if dry_run else 'removed'} {entry}")
    console.print(f"{len(doomed)} entries, {size_text(size)} {'reclaimable' if dry_run else 'reclaimed'}")
