"""``workbench sae`` wiring (the heavy commands run on the embedded model and are exercised by hand / the bench)."""

from typer.testing import CliRunner
from sae_helpers import tiny_sae

from workbench.cli import app


def test_sae_group_and_bench_are_attached():
    r = CliRunner().invoke(app, ["sae", "--help"])
    assert r.exit_code == 0
    for cmd in ("train", "scores", "dashboard", "steer", "replicate", "list"):
        assert cmd in r.output
    r = CliRunner().invoke(app, ["bench", "--help"])
    assert "sae" in r.output


def test_train_passes_flags_to_the_training_entry_point():
    r = CliRunner().invoke(app, ["sae", "train", "--help"])
    assert r.exit_code == 0 and "--d-sae" in r.output and "--layers" in r.output


def test_list(tmp_path, monkeypatch):
    tiny_sae().save_model(tmp_path / "my-sae")
    monkeypatch.setenv("WORKBENCH_SAES", str(tmp_path))
    r = CliRunner().invoke(app, ["sae", "list"])
    assert r.exit_code == 0 and "my-sae" in r.output
