"""The README's performance table from one bench run's results folder (``bench/run_all.py`` writes it).

``python bench/readme_table.py bench/results/<run> [--write-readme README.md]`` prints the table (the machine
named above it) and optionally puts it into README.md between ``<!-- bench-table -->`` and
``<!-- /bench-table -->``, replacing what was there. Rows come in the order the benches ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- bench-table -->", "<!-- /bench-table -->"


class TableError(ValueError):
    """A results folder or README that cannot give or take a table."""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _mark(i: int) -> str:
    """The footnote mark of note ``i``: \\*, \\*\\*, \\*\\*\\*, then (4), (5), ..."""
    return "\\*" * i if i <= 3 else f" ({i})"


def render(folder: Path) -> str:
    """The machine line and the Markdown table of every recorded row."""
    folder = Path(folder)
    try:
        info = json.loads((folder / "machine.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TableError(f"{folder / 'machine.json'}: cannot read the run's machine description ({exc})") from None
    rows = []
    rows_file = folder / "rows.jsonl"
    if rows_file.exists():
        for n, line in enumerate(rows_file.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                rows.append((row["what"], row["result"], row.get("goal", ""), row.get("note", "")))
            except (ValueError, KeyError, TypeError):
                raise TableError(f"{rows_file}: line {n}: expected a JSON object with 'what' and 'result'") from None
    benches = info.get("benches", [])
    failed = [b["name"] for b in benches if b.get("rc")]
    minutes = info.get("seconds", 0) / 60
    head = (f"Measured by one `nox -s bench` run ({minutes:.0f} min, {info.get('started', '?')}) on "
            f"{info['cpu']}, {info['cores']} cores, float32 matmul peak {info['matmul_peak_gflops']:.0f} GFLOP/s "
            f"(jitted {info.get('matmul_size', 2048)}³ matmul, same run); load average {info['load_start']:.1f} at the start, "
            f"{info.get('load_end', float('nan')):.1f} at the end. Regenerate with `nox -s bench -- --write-readme "
            f"README.md` on an idle machine.")
    if info.get("left_out"):
        head += f" Left out of this run: {', '.join(info['left_out'])}."
    if failed:
        head += f" Benches that failed (no rows): {', '.join(failed)}."
    lines = [head, "", "| what | result | goal |", "|---|---|---|"]
    notes = []
    for what, result, goal, note in rows:
        mark = ""
        if note:  # rows sharing a note share its mark
            if note not in notes:
                notes.append(note)
            mark = _mark(notes.index(note) + 1)
        lines.append(f"| {_cell(what)}{mark} | {_cell(result)} | {_cell(goal)} |")
    for i, note in enumerate(notes, 1):
        lines += ["", f"{_mark(i).strip()} {note}"]
    return "\n".join(lines).rstrip() + "\n"


def write_readme(readme: Path, table: str) -> None:
    """Replace the text between the markers; a README without both markers is an error (nothing written)."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise TableError(f"{readme}: expected the markers {BEGIN} and {END} around the performance table")
    readme.write_text(text[: start + len(BEGIN)] + "\n" + table + text[end:], encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--write-readme", type=Path, metavar="README")
    args = parser.parse_args()
    try:
        table = render(args.folder)
        print(table)
        if args.write_readme:
            write_readme(args.write_readme, table)
    except TableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
