"""Stages in a user's own package (written to tmp): their helpers are followed across modules, through
attribute chains, classes, constants, function-local imports and cycles; a dry run names what changed in
the code or in the environment. Files are edited after import and the memoised analyses forgotten: the
analysis reads the files, so this is what a new process would compute."""

import pytest
import user_package
from user_package import edit, run_all

from cirkit.engine import Store, fingerprint, provenance
from cirkit.experiment.runner import explain_step

package = user_package.package  # the fixture


@pytest.mark.parametrize("file,old,new,misses,reason", [
    ("helpers.py", "SCALE = 2.0", "SCALE = 2.5", {"scaled"}, "code changed: {pkg}.helpers.SCALE"),
    ("helpers.py", "return x * SCALE", "return x * SCALE * 2", {"scaled"}, "code changed: {pkg}.helpers.Scaler"),
    ("helpers.py", "return ping(n)", "return ping(n) + 1", {"scaled"}, "code changed: {pkg}.helpers.pong"),
    ("numbers.py", "FACTOR = 3", "FACTOR = 4", {"counted"}, "code changed: {pkg}.numbers.FACTOR"),
    ("stages.py", "return x * 3", "return x * 4", {"dispatch_declared"}, "code changed: {pkg}.stages.triple"),
])
def test_an_edit_misses_exactly_the_dependent_stages_and_names_the_definition(
        tmp_path, package, file, old, new, misses, reason):
    name, folder, module = package
    store = Store(str(tmp_path / "store"))
    before = run_all(store, module)
    edit(folder, file, old, new)
    after = run_all(store, module, dry_run=True)
    assert {n for n, s in after.items() if s.status != "hit"} == misses
    for n in misses:
        assert explain_step(after[n], before[n].to_json(), True) == [reason.format(pkg=name)]


def test_layout_changes_nothing(tmp_path, package):
    _, folder, module = package
    store = Store(str(tmp_path / "store"))
    run_all(store, module)
    edit(folder, "helpers.py", "def apply(self, x):\n        return x * SCALE",
         'def apply(self, x):\n        """Scale."""\n        # by the constant\n        return (x *\n                SCALE)')
    edit(folder, "numbers.py", "FACTOR = 3", "FACTOR = (3)  # three")
    assert {s.status for s in run_all(store, module, dry_run=True).values()} == {"hit"}


def test_dynamic_dispatch_needs_helpers(package):
    """The analysis cannot see a function picked by a computed name: only the stage declaring it follows it."""
    _, _, module = package
    assert f"{module.__name__}.triple" in module.dispatch_declared.analysis.deps
    assert f"{module.__name__}.triple" not in module.dispatch.analysis.deps


def test_a_changed_package_version_is_a_named_miss(tmp_path, package, monkeypatch):
    """The installed version is simulated by patching the one function keys read versions from."""
    _, _, module = package
    real = provenance.installed_version("numpy")
    store = Store(str(tmp_path / "store"))
    before = run_all(store, module)
    assert before["summed"].environment == {"numpy": real} and before["plain"].environment == {}
    assert store.get_record(before["summed"].key)["environment"] == {"numpy": real}
    monkeypatch.setattr(provenance, "installed_version", lambda d: "99.0" if d == "numpy" else real)
    fingerprint.clear_caches()
    after = run_all(store, module, dry_run=True)
    assert {n for n, s in after.items() if s.status != "hit"} == {"summed"}
    assert explain_step(after["summed"], before["summed"].to_json(), True) == [
        f"environment changed: numpy {real} → 99.0"]

