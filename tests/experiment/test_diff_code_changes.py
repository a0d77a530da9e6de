"""`cirkit diff` names the code definition that changed between two runs (a user's package in tmp)."""

import user_package
from user_package import edit, run_all

from cirkit.engine import Store
from cirkit.experiment.diff import diff_runs

package = user_package.package  # the fixture


def test_diff_names_the_changed_definition(tmp_path, package):
    """`cirkit diff` of two runs made before and after an edit says which definition changed."""
    name, folder, module = package
    store = Store(str(tmp_path / "store"))
    for run, (old, new) in (("a", ("", "")), ("b", ("SCALE = 2.0", "SCALE = 2.5"))):
        if old:
            edit(folder, "helpers.py", old, new)
        steps = run_all(store, module)
        store.put_run(run, {"config": {}, "steps": [s.to_json() for s in steps.values()], "metrics": None})
    report = diff_runs(store, "a", "b", values=False)
    assert [(d["step"], d["why"]) for d in report["differ"]] == [("scaled", [f"code changed: {name}.helpers.SCALE"])]
