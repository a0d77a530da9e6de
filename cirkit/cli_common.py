"""What every cirkit command shares: the consoles, the ``--store`` option and opening a store with a one-line error."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from rich.console import Console

from .engine import Store

__all__ = ["console", "err", "store_option", "open_store", "size_text"]


class _LazyConsole:
    """A rich console made at first use, so it sees the real output stream (a terminal, a pipe, a test)."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    def __getattr__(self, name: str) -> Any:
        stream = sys.stderr if self.stderr else sys.stdout
        width = None if stream.isatty() else int(os.environ.get("COLUMNS", "160"))
        return getattr(Console(file=stream, width=width, stderr=self.stderr), name)


console = _LazyConsole()
err = _LazyConsole(stderr=True)

store_option = click.option(
    "--store", "store_url", envvar="CIRKIT_STORE", default="artifacts", show_default=True,
    help="Store root: a directory or an fsspec URL (or set CIRKIT_STORE).",
)



def open_store(store_url: str, what: str = "--store") -> Store:
    """The store at ``store_url``; a file, an unknown URL scheme or a place that cannot be opened is a one-line
    error, not a traceback."""
    scheme = store_url.split("://", 1)[0] if "://" in store_url else ""
    if scheme and scheme != "file":
        from fsspec.registry import available_protocols

        if scheme not in available_protocols():
            raise click.ClickException(f"{what} {store_url}: unknown URL scheme {scheme!r}; expected a folder or an "
                                       "fsspec URL (file://, s3://, gs://, memory://, ...)")
    elif os.path.isfile(store_url.removeprefix("file://")):
        raise click.ClickException(f"{what} {store_url}: expected a store folder or URL, found a file")
    try:
        return Store(store_url)
    except (OSError, ValueError, ImportError) as exc:
        reason = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise click.ClickException(f"{what} {store_url}: cannot open the store ({reason})") from None


def size_text(n: float) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
