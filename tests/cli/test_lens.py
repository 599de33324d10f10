"""The lens command lives in workbench.cli.lens, is attached to the CLI, and validates its options
before loading a model."""

from typer.testing import CliRunner

from workbench.cli import lens as lens_cli
from workbench.cli.main import app


def test_lens_command_is_exposed():
    assert set(lens_cli.commands) == {"lens"}
    assert "lens" in CliRunner().invoke(app, ["--help"]).output
    out = CliRunner().invoke(app, ["lens", "--help"]).output
    assert "--target" in out and "--train-tuned" in out


def test_lens_rejects_bad_options_before_loading_the_model():
    r = CliRunner().invoke(app, ["lens", "hello", "--k", "0"])
    assert r.exit_code != 0 and "--k" in r.output
    r = CliRunner().invoke(app, ["lens", "hello", "--steer-layer", "3"])
    assert r.exit_code != 0 and "--steer-token" in r.output
    r = CliRunner().invoke(app, ["lens", "hello", "--train-tuned", "--tuned-seconds", "0"])
    assert r.exit_code != 0 and "--tuned-seconds" in r.output
