"""A tour of the notebook API, cell by cell: open a store, compare runs, look at single queries.

    python examples/notebook_tour.py --store artifacts RUN [RUN ...]

Each block below is what you would type into a notebook cell.
"""

import argparse

import cirkit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("runs", nargs="+")
parser.add_argument("--store", default="artifacts")
args = parser.parse_args()

# %% every run in the store, with its headline metrics and cold compute time
ws = cirkit.open(args.store)
print(ws.runs_frame().to_string())

# %% metrics side by side: one frame per run, concatenated with the run as the outer index
import pandas as pd  # noqa: E402

frames = {name: ws.runs[name].metrics_frame() for name in args.runs}
print(pd.concat(frames).to_string())

# %% the steps of the first run and what computing each one cost
run = ws.runs[args.runs[0]]
print(run.steps_frame().to_string())

# %% a stored artifact is a plain Python value: a Ranking dataclass with NumPy arrays
evaluate = next(name for name, step in run.steps.items() if step.stage == "evaluate")
ranking = run.input(evaluate, "ranking")
print(type(ranking).__name__, ranking.indices.shape, ranking.indices.dtype, "first query:", ranking.ranked_ids(0, 3))

# %% per query: the instruction, its targets and the rank of the first target (NaN: not in the top k)
ranks = run.target_ranks()
print(ranks.head().to_string())

# %% queries whose target moved the most between the first and the last run
if len(args.runs) > 1:
    last = ws.runs[args.runs[-1]].target_ranks()
    moved = ranks["rank"].fillna(1000) - last["rank"].fillna(1000)  # > 0: the target ranks higher in the last run
    print("biggest wins:", list(moved[moved > 0].sort_values(ascending=False).index[:3]),
          "biggest losses:", list(moved[moved < 0].sort_values().index[:3]))

# %% every per-query text the run produced, next to the query
print(run.texts().head().to_string())
print(run.ranking_frame(k=3).head(6).to_string())
