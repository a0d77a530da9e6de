"""The rows a bench contributes to the README's performance table.

A bench calls :func:`record` for each number the README shows, next to where it prints it. When
``CIRKIT_BENCH_RESULTS`` names a file (``bench/run_all.py`` sets it), each row is appended to it as one JSON
line; run alone, a bench only prints. ``bench/readme_table.py`` turns the file into the table. A new bench
(``bench/NAME_bench.py``) joins ``nox -s bench`` by its name alone and adds rows by calling ``record``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["record", "ENV"]

ENV = "CIRKIT_BENCH_RESULTS"


def record(what: str, result: str, goal: str = "", *, note: str = "") -> None:
    """One table row: what was measured, the result as the README shows it, the goal (if any)."""
    path = os.environ.get(ENV)
    if not path:
        return
    row = {"bench": Path(sys.argv[0]).name, "what": what, "result": result, "goal": goal, "note": note}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
