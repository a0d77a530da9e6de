"""Every bench in one run (``nox -s bench``), each in its own process, then the README's performance table.

The machine is described once at the top (CPU model, cores, float32 matmul peak measured now, load average)
and again at the end (the load, to show whether the run was disturbed). Each bench's output goes to the
terminal and to ``bench/results/<UTC time>/<name>.log``; the rows it records (``bench/rows.py``) go to
``rows.jsonl`` there, and ``bench/readme_table.py`` turns them into ``table.md``. ``--write-readme`` puts
the table into README.md between its markers.

Benches run in the order of ``ORDER``; any other ``bench/*_bench.py`` (a new one) runs after them, so a new
bench joins by its file name. ``--only``/``--skip`` take names without ``_bench.py``; ``--args NAME=ARGS``
passes arguments to one bench (e.g. ``--args "retrieval=--n 200000"``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import cpu_model, matmul_peak  # noqa: E402
from readme_table import TableError, render, write_readme  # noqa: E402
from rows import ENV  # noqa: E402

ORDER = ["engine", "store_scale", "fingerprint", "clip", "bf16", "decode", "retrieval", "models", "lm", "train",
         "sharing", "ray"]
NOT_IN_RUN = {"hostile_store"}  # a safety check of verify's limits, not a performance figure of the README


def discover(folder: Path = HERE) -> list[str]:
    """Bench names (``NAME_bench.py``) in run order: ``ORDER`` first, then any others by name."""
    found = {p.name[: -len("_bench.py")] for p in folder.glob("*_bench.py")} - NOT_IN_RUN
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def machine(peak_size: int) -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_start": os.getloadavg()[0],
            "matmul_peak_gflops": matmul_peak(peak_size), "matmul_size": peak_size,
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated bench names (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated bench names to leave out")
    parser.add_argument("--args", action="append", default=[], metavar="NAME=ARGS", help="arguments for one bench")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for this run's results folder")
    parser.add_argument("--write-readme", metavar="README", help="replace the table in this README")
    parser.add_argument("--bench-dir", type=Path, default=HERE, help=argparse.SUPPRESS)  # tests: other benches
    parser.add_argument("--peak-size", type=int, default=2048, help=argparse.SUPPRESS)  # tests: a quick peak
    args = parser.parse_args(argv)
    names = every = discover(args.bench_dir)
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"--only: no bench named {', '.join(unknown)} (found: {', '.join(names)})")
        names = [n for n in names if n in wanted]
    names = [n for n in names if n not in args.skip.split(",")]
    extra = {}
    for item in args.args:
        name, sep, value = item.partition("=")
        if not sep or name not in names:
            parser.error(f"--args {item!r}: expected NAME=ARGS with NAME one of {', '.join(names)}")
        extra[name] = shlex.split(value)

    out = Path(args.out) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    info = machine(args.peak_size)
    info["left_out"] = [n for n in every if n not in names]
    print(f"machine: {info['cpu']}, {info['cores']} cores, float32 matmul peak {info['matmul_peak_gflops']:.0f} "
          f"GFLOP/s (jit {args.peak_size}^3, measured now), load average {info['load_start']:.1f}; results in {out}", flush=True)
    env = {**os.environ, ENV: str(out / "rows.jsonl")}
    info["benches"], failed = [], []
    start = time.perf_counter()
    for name in names:
        cmd = [sys.executable, str(args.bench_dir / f"{name}_bench.py"), *extra.get(name, [])]
        print(f"\n===== {name}: {shlex.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        with open(out / f"{name}.log", "w", encoding="utf-8") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            rc = proc.wait()
        seconds = time.perf_counter() - t0
        info["benches"].append({"name": name, "seconds": round(seconds, 1), "rc": rc})
        if rc:
            failed.append(name)
            print(f"===== {name} FAILED (exit {rc}) after {seconds:.0f} s", flush=True)
    info["seconds"] = round(time.perf_counter() - start, 1)
    info["load_end"] = os.getloadavg()[0]
    (out / "machine.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    table = render(out)
    (out / "table.md").write_text(table, encoding="utf-8")
    print("\n" + table)
    if args.write_readme and not failed:
        try:
            write_readme(Path(args.write_readme), table)
        except TableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"table written into {args.write_readme}")
    if failed:
        print(f"failed: {', '.join(failed)} (the README was not changed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
