"""``workbench sae`` wiring (the heavy commands run on the embedded model and are exercised by hand / the bench)."""

import pytest
from sae_helpers import tiny_sae
from typer.testing import CliRunner

from workbench.cli import app


def test_sae_group_and_bench_are_attached():
    r = CliRunner().invoke(app, ["sae", "--help"])
    assert r.exit_code == 0
    for cmd in ("train", "scores", "dashboard", "steer", "replicate", "list"):
        assert cmd in r.output
    r = CliRunner().invoke(app, ["bench", "--help"])
    assert "sae" in r.output


def test_train_is_a_typer_command_with_real_help():
    r = CliRunner().invoke(app, ["sae", "train", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for opt in ("--layers", "--model", "--device", "--d-sae", "--extract-only", "--name-prefix"):
        assert opt in r.output, opt


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "six"], "comma-separated ints"),
        (["--device", "cuda:7"], "CUDA"),
        (["--device", "gpu"], "not a torch device"),
        (["--k", "9999"], "TrainConfig.k"),
        (["--save-dtype", "int8"], "save_dtype"),
    ],
)
def test_train_bad_arguments_give_one_clear_error(args, message):
    r = CliRunner().invoke(app, ["sae", "train", *args], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_steer_rejects_a_non_positive_max_activation_as_such():
    r = CliRunner().invoke(app, ["sae", "steer", "any-sae", "3", "--max-activation", "-1"], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "--max-activation" in r.output and "positive" in r.output, r.output
    assert "pass --max-activation" not in r.output


def test_main_entry_reports_bad_arguments_in_one_error_line(capsys):
    from workbench.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["sae", "train", "--layers", "six"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("Error")] == [
        "Error: Invalid value: layers must be comma-separated ints such as '6,15,24', got 'six'"
    ]


def test_list(tmp_path, monkeypatch):
    tiny_sae().save_model(tmp_path / "my-sae")
    monkeypatch.setenv("WORKBENCH_SAES", str(tmp_path))
    r = CliRunner().invoke(app, ["sae", "list"])
    assert r.exit_code == 0 and "my-sae" in r.output


def test_replicate_replot_needs_saved_results(tmp_path):
    r = CliRunner().invoke(app, ["sae", "replicate", "--replot", "--out", str(tmp_path)], env={"COLUMNS": "300"})
    assert r.exit_code != 0 and "no saved results" in r.output


@pytest.mark.embedded
def test_scores_dashboard_steer_and_replot_on_the_embedded_model(tmp_path):
    """The user's path through the CLI on a trained SAE: score every latent (small corpus budget),
    write dashboards from the saved scores, steer with one feature, redraw the replication figures."""
    import shutil

    from workbench.sae.loading import list_local_saes

    name = next(n for n in list_local_saes() if "-24-" in n)  # the deepest layer: the shortest forward
    scores_dir = tmp_path / "scores"
    r = CliRunner().invoke(app, ["sae", "scores", name, "--n-rows", "16", "--out", str(scores_dir), "--show", "3"])
    assert r.exit_code == 0, r.output
    assert "highest output scores" in r.output and (scores_dir / "scores.csv").exists()
    r = CliRunner().invoke(
        app, ["sae", "dashboard", name, "--top", "2", "--scores-dir", str(scores_dir), "--out", str(tmp_path / "dash")]
    )
    assert r.exit_code == 0, r.output
    pages = sorted(p.name for p in (tmp_path / "dash").glob("*.html"))
    assert "index.html" in pages and len(pages) == 3, pages
    r = CliRunner().invoke(
        app, ["sae", "steer", name, "5", "--scores-dir", str(scores_dir), "-s", "4", "--tokens", "4"]
    )
    assert "prompt:" in r.output or "never fired" in r.output, r.output
    results = tmp_path / "results"
    shutil.copytree("results/sae", results)
    r = CliRunner().invoke(
        app, ["sae", "replicate", "--replot", "--out", str(results), "--figures", str(tmp_path / "figs")]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "figs" / "sae_steering.html").exists() and "success_ratio_filtered_over_random" in r.output
