"""The bench runner (bench/run_all.py) and the README table it writes (bench/readme_table.py).

Runs the real runner in a subprocess over a folder of tiny bench scripts that record rows the way the real
benches do (bench/rows.py), with a small matmul for the machine's peak so the test stays quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"

BENCH_SCRIPT = """
import sys
sys.path.insert(0, {bench!r})
from rows import record
print("bench {name} ran with", sys.argv[1:])
{body}
"""

README = """# project

Intro text that must stay.

<!-- bench-table -->
| what | result | goal |
|---|---|---|
| an old figure from another machine | 1 | |
<!-- /bench-table -->

## After
Text after the table that must stay.
"""


def write_bench(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}_bench.py").write_text(BENCH_SCRIPT.format(bench=str(BENCH), name=name, body=body))


def run_all(folder: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(BENCH / "run_all.py"), "--bench-dir", str(folder), "--out", str(out),
           "--peak-size", "128", *args]
    env = {k: v for k, v in os.environ.items() if k != "CIRKIT_BENCH_RESULTS"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**env, "JAX_PLATFORMS": "cpu"})


def only_run(out: Path) -> Path:
    (run,) = list(out.iterdir())
    return run


def test_one_run_collects_every_bench_rows_in_order_and_writes_the_readme_table(tmp_path):
    benches, out = tmp_path / "benches", tmp_path / "out"
    benches.mkdir()
    write_bench(benches, "zeta_new", 'record("a new bench joins by its file name", "7 items/s")')
    write_bench(benches, "engine", 'record("lookup | per item", "1.6 µs", "≤ 50 µs", note="on 10k items")\n'
                                   'record("rerun / cold", "0.03 %", "≤ 2 %", note="on 10k items")')
    write_bench(benches, "clip", 'record("CLIP images/s", "36.8 vs 17.3 (2.1×)", "≥ 1.5×", note="batch 32")')
    readme = tmp_path / "README.md"
    readme.write_text(README)

    done = run_all(benches, out, "--write-readme", str(readme), "--args", "clip=--fast 3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bench clip ran with ['--fast', '3']" in done.stdout
    run = only_run(out)
    info = json.loads((run / "machine.json").read_text())
    assert [b["name"] for b in info["benches"]] == ["engine", "clip", "zeta_new"]  # known order, then new ones
    assert info["matmul_peak_gflops"] > 0 and info["cores"] >= 1

    text = readme.read_text()
    assert text.startswith("# project\n\nIntro text that must stay.\n\n<!-- bench-table -->\n")
    assert text.endswith("<!-- /bench-table -->\n\n## After\nText after the table that must stay.\n")
    assert "an old figure from another machine" not in text
    table = text.split("<!-- bench-table -->\n", 1)[1].split("<!-- /bench-table -->", 1)[0]
    assert table == (run / "table.md").read_text()
    head, _, body = table.partition("\n\n")
    assert info["cpu"] in head and f"{info['matmul_peak_gflops']:.0f} GFLOP/s" in head
    assert f"{info['cores']} cores" in head
    lines = body.splitlines()
    assert lines[:5] == [
        "| what | result | goal |", "|---|---|---|",
        "| lookup \\| per item\\* | 1.6 µs | ≤ 50 µs |",  # a '|' in a cell is escaped; a shared note, one mark
        "| rerun / cold\\* | 0.03 % | ≤ 2 % |",
        "| CLIP images/s\\*\\* | 36.8 vs 17.3 (2.1×) | ≥ 1.5× |",
    ]
    assert lines[5] == "| a new bench joins by its file name | 7 items/s |  |"
    assert "\\* on 10k items" in lines and "\\*\\* batch 32" in lines


def test_a_failing_bench_fails_the_run_and_leaves_the_readme_alone(tmp_path):
    benches, out = tmp_path / "benches", tmp_path / "out"
    benches.mkdir()
    write_bench(benches, "engine", 'record("lookup", "1.6 µs")')
    write_bench(benches, "clip", 'raise SystemExit(3)')
    readme = tmp_path / "README.md"
    readme.write_text(README)

    done = run_all(benches, out, "--write-readme", str(readme))
    assert done.returncode == 1
    assert "clip FAILED (exit 3)" in done.stdout and "failed: clip" in done.stdout
    assert readme.read_text() == README
    table = (only_run(out) / "table.md").read_text()
    assert "Benches that failed (no rows): clip." in table and "| lookup | 1.6 µs |" in table
    assert "Left out" not in table


def test_a_narrowed_run_names_the_benches_it_left_out(tmp_path):
    benches, out = tmp_path / "benches", tmp_path / "out"
    benches.mkdir()
    for name in ("engine", "clip", "retrieval"):
        write_bench(benches, name, f'record("{name} figure", "1")')
    done = run_all(benches, out, "--skip", "clip", "--only", "engine,clip,retrieval")
    assert done.returncode == 0, done.stderr
    table = (only_run(out) / "table.md").read_text()
    assert "Left out of this run: clip." in table
    assert "| engine figure | 1 |" in table and "| retrieval figure | 1 |" in table and "clip figure" not in table


def test_a_readme_without_the_markers_is_a_one_line_error(tmp_path):
    benches, out = tmp_path / "benches", tmp_path / "out"
    benches.mkdir()
    write_bench(benches, "engine", 'record("lookup", "1.6 µs")')
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n")

    done = run_all(benches, out, "--write-readme", str(readme))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {readme}: expected the markers <!-- bench-table --> and <!-- /bench-table --> around the "
        "performance table")
    assert readme.read_text() == "# no table here\n"


def test_unknown_bench_names_are_refused(tmp_path):
    benches = tmp_path / "benches"
    benches.mkdir()
    write_bench(benches, "engine", "")
    done = run_all(benches, tmp_path / "out", "--only", "engine,clipp")
    assert done.returncode == 2 and "no bench named clipp (found: engine)" in done.stderr


def test_every_real_bench_script_imports():
    """A bench that fails at import only shows up 30 minutes into ``nox -s bench`` (local_batching did: it
    imported a name lm_bench no longer had). Each script is loaded as a module (its main() is not run)."""
    code = (
        "import importlib.util, sys, pathlib\n"
        f"bench = pathlib.Path({str(BENCH)!r})\n"
        "sys.path.insert(0, str(bench))\n"
        "failed = []\n"
        "for path in sorted(bench.glob('*_bench.py')):\n"
        "    spec = importlib.util.spec_from_file_location(path.stem, path)\n"
        "    module = sys.modules[path.stem] = importlib.util.module_from_spec(spec)  # dataclasses look it up\n"
        "    try:\n"
        "        spec.loader.exec_module(module)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{path.name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
