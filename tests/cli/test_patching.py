"""The patch command is wired into the workbench CLI and validates its options before loading a model."""

from typer.testing import CliRunner

from workbench.cli import patching as patching_cli
from workbench.cli.main import app, bench_app


def test_commands_are_exposed_and_listed():
    assert set(patching_cli.commands) == {"patch"}
    assert callable(patching_cli.bench_command)
    out = CliRunner().invoke(app, ["--help"]).output
    assert "patch" in out
    assert "patching" in CliRunner().invoke(bench_app, ["--help"]).output


def test_patch_rejects_bad_options_before_loading_the_model():
    r = CliRunner().invoke(app, ["patch", "--method", "magic"])
    assert r.exit_code != 0 and "act, atp, relp, all" in r.output
    r = CliRunner().invoke(app, ["patch", "--streams", "resid_pre,resid_mid"])
    assert r.exit_code != 0 and "resid_mid" in r.output
    r = CliRunner().invoke(app, ["patch", "--task", "nope"])
    assert r.exit_code != 0 and "ioi" in r.output
    r = CliRunner().invoke(app, ["patch", "--n", "0"])
    assert r.exit_code != 0 and "--n" in r.output
