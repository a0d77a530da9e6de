"""The README's worked example shows the keys, statuses and metrics a user gets: its commands are run here on
a fresh store and every step line of the README is compared with what the CLI prints. (Keys change with
cirkit's code and the keyed package versions; when this fails after such a change, the README is out of date.)"""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from cirkit.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
STEP = re.compile(r"^\s*│?\s*(\w+)\s+│?\s*(\w+ v\d+)\s+│?\s*(computed|hit|miss|pending)\b(.*)$")
KEY = re.compile(r"\b[0-9a-f]{12}\b")


def example_blocks() -> dict[str, list[tuple]]:
    """Each ``$ cirkit ...`` command of the worked example -> its step lines as (step, stage, status, key)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("### A worked example", 1)[1].split("```console", 1)[1].split("```", 1)[0]
    out, command = {}, None
    for line in block.splitlines():
        if line.startswith("$ "):
            command = line[2:].split("  #")[0].strip()
            out[command] = []
        elif command and (m := STEP.match(line)):
            key = KEY.search(m[4])
            out[command].append((m[1], m[2], m[3], key[0] if key else None))
    return out


def printed_steps(output: str) -> list[tuple]:
    rows = []
    for line in output.splitlines():
        if m := STEP.match(line.replace("┃", "│")):
            key = KEY.search(m[4])
            rows.append((m[1], m[2], m[3], key[0] if key else None))
    return rows


def readme_metrics() -> list[str]:
    """The numbers under the first command's metric header (R@1 ... chance R@50)."""
    lines = README.read_text(encoding="utf-8").split("### A worked example", 1)[1].splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["R@1"])
    return lines[header + 1].split()


def test_the_worked_example_prints_the_keys_the_readme_shows(tmp_path):
    blocks = example_blocks()
    commands = [c for c in blocks if c.startswith("cirkit run")]
    assert len(commands) == 3 and all(blocks[c] for c in commands), blocks
    for command in commands:
        args = command.split()[1:]
        result = CliRunner().invoke(main, [*args, "--store", str(tmp_path / "store")], catch_exceptions=False,
                                    env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        printed = printed_steps(result.output)
        shown = blocks[command]
        # the README shows every step of the first two commands and only the changed step of the third
        expected = [row for row in printed if row[0] in {s[0] for s in shown}]
        assert expected == shown, f"README's `{command}` differs from what it prints:\n{result.output}"
        if command == commands[0]:
            metrics = readme_metrics()
            assert len(metrics) == 8 and re.search(r"[ │]+".join(map(re.escape, metrics)), result.output), metrics
