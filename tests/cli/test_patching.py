"""The lens/patch commands are wired into the workbench CLI and validate their options."""

from typer.testing import CliRunner

from workbench.cli.main import app, bench_app
from workbench.cli import patching as patching_cli


def test_commands_are_exposed_and_listed():
    assert set(patching_cli.commands) == {"lens", "patch"}
    assert callable(patching_cli.bench_command)
    out = CliRunner().invoke(app, ["--help"]).output
    assert "lens" in out and "patch" in out
    assert "patching" in CliRunner().invoke(bench_app, ["--help"]).output


def test_patch_rejects_unknown_method_and_stream_before_loading_the_model():
    r = CliRunner().invoke(app, ["patch", "--method", "magic"])
    assert r.exit_code != 0 and "act, atp, relp, all" in r.output
    r = CliRunner().invoke(app, ["patch", "--streams", "resid_pre,resid_mid"])
    assert r.exit_code != 0 and "resid_mid" in r.output
