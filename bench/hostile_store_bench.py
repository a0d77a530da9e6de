"""Hostile stores: how long `verify` takes on a gather tower and on deeply nested JSON.

A gather tower is ``depth`` tiny self-consistent gather values, each naming the previous one twice; without
a memo loading one is exponential in the depth. Deep JSON is 100,000 ``[`` in a record, a run and a shard.
Each case runs in a child process with a time limit and prints seconds, reads of stored files, and the
ratio to verifying an honest store of the same number of files measured in the same run.
``python bench/hostile_store_bench.py [LIMIT_SECONDS]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys, time, warnings, json
import numpy as np
sys.path.insert(0, "tests")
from cirkit.engine import Store, digest
from cirkit.engine.maintenance import verify_store
kind, depth, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = Store(root)
n = 64
value = np.arange(n, dtype=np.int64)
hashes = [store.put_value(value)]
for i in range(depth):
    if kind == "tower":
        value = np.concatenate([value[1:], value[:1]])
        hashes.append(store.put_gather([hashes[-1], hashes[-1]], [[0, 1, n - 1], [1, 0, 1]], digest(value)))
    else:
        hashes.append(store.put_value(np.arange(n, dtype=np.int64) + i + 1))
if kind == "deep":
    for path in ("runs/r.json", "records/ab/" + "ab" * 32 + ".json", "items/" + "cd" * 32 + "/" + "ef" * 16 + ".json"):
        store.fs.write_atomic(path, b"[" * 100_000)
reads = [0]
real = store.fs.read
store.fs.read = lambda p: reads.__setitem__(0, reads[0] + 1) or real(p)
warnings.simplefilter("ignore")
t = time.perf_counter()
try:
    if sys.argv[4] == "load":  # what export and a run do: load the top value
        store.get_value(hashes[-1])
        outcome = "loaded"
    else:
        checked, problems = verify_store(store)
        outcome = f"{checked} checked, {len(problems)} problems"
except BaseException as exc:
    outcome = f"crashed: {type(exc).__name__}"
print(json.dumps({"seconds": time.perf_counter() - t, "reads": reads[0], "outcome": outcome}))
"""


def case(kind: str, depth: int, limit: float, what: str = "verify") -> dict:
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        try:
            out = subprocess.run([sys.executable, "-c", CHILD, kind, str(depth), root, what], capture_output=True,
                                 text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            return {"seconds": time.perf_counter() - start, "reads": None, "outcome": f"did not finish in {limit:.0f} s"}
        if out.returncode:
            return {"seconds": None, "reads": None, "outcome": "child failed: " + out.stderr.strip().splitlines()[-1]}
        import json

        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    limit = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    for what, kind, depth in (("verify", "flat", 40), ("verify", "tower", 18), ("verify", "tower", 40),
                              ("load", "tower", 18), ("load", "tower", 40), ("verify", "deep", 3)):
        r = case(kind, depth, limit, what)
        reference = case("flat", depth, limit) if kind != "flat" else r
        ratio = f"{r['seconds'] / reference['seconds']:.1f}x" if r["seconds"] and reference["seconds"] else "-"
        print(f"{what:6s} {kind:5s} depth {depth:3d}: {r['outcome']}, {r['seconds'] or 0:.3f} s, {r['reads']} reads, "
              f"{ratio} verifying the honest store of {depth + 1} values")


if __name__ == "__main__":
    main()
