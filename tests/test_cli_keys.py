"""`cirkit run --dry-run` names the code definition or the package version that changed, through run records
stored and read back (a user's package in tmp; the memoised analyses are forgotten between commands, as a
new process would start without them)."""

import user_package
from click.testing import CliRunner
from user_package import edit

from cirkit.cli import main
from cirkit.engine import fingerprint, provenance

package = user_package.package  # the fixture


def test_dry_run_names_changed_code_and_environment(tmp_path, package, monkeypatch):
    name, folder, module = package
    exp = tmp_path / "user.toml"
    exp.write_text(f'pipeline = "{module.__name__}:pipe"\nname = "user"\n')

    def cli(*args):
        result = CliRunner().invoke(main, [*args, "--store", str(tmp_path / "store"), "--quiet"],
                                    catch_exceptions=False, env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        return result.output

    cli("run", str(exp))
    edit(folder, "helpers.py", "SCALE = 2.0", "SCALE = 2.5")
    out = cli("run", str(exp), "--dry-run")
    assert f"code changed: {name}.helpers.SCALE" in out
    assert [line.split()[1] for line in out.splitlines() if "miss" in line] == ["scaled"]
    real = provenance.installed_version("numpy")
    monkeypatch.setattr(provenance, "installed_version", lambda d: "99.0" if d == "numpy" else real)
    fingerprint.clear_caches()
    out = cli("run", str(exp), "--dry-run")
    assert f"environment changed: numpy {real} → 99.0" in out
