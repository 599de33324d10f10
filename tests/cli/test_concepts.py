from typer.testing import CliRunner

from workbench.cli.concepts import _parse_layers, app

runner = CliRunner()


def test_cli_lists_its_commands():
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for cmd in ("fit", "steer", "compare"):
        assert cmd in out.output


def test_layer_spec_parsing():
    assert _parse_layers("0-4", 30) == [0, 1, 2, 3, 4]
    assert _parse_layers("2-10:4", 30) == [2, 6, 10]
    assert _parse_layers("3,7", 30) == [3, 7]
    import pytest
    import typer

    with pytest.raises(typer.BadParameter, match="outside"):
        _parse_layers("28-31", 30)
    with pytest.raises(typer.BadParameter, match="look like"):
        _parse_layers("a-b", 30)


def test_compare_rejects_bad_options_before_loading_a_model():
    out = runner.invoke(app, ["compare", "--toward", "sideways"])
    assert out.exit_code != 0 and "toward" in out.output
    out = runner.invoke(app, ["compare", "--grid", "4,x"])
    assert out.exit_code != 0 and "grid" in out.output


def test_compare_rejects_a_bad_budget_before_loading_a_model():
    out = runner.invoke(app, ["compare", "--budget", "huge"])
    assert out.exit_code != 0 and "budget" in str(out.exception)


def test_steer_reports_a_missing_vector_without_a_traceback(tmp_path, capsys):
    import pytest

    from workbench.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["concepts", "steer", str(tmp_path / "nothing")])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps the line at the terminal width
    assert "nothing.json is missing" in err and "Traceback" not in err


def test_build_data_rebuilds_the_shipped_concept_files(tmp_path):
    """The template builder reproduces workbench/data/*.jsonl byte for byte."""
    from workbench.concepts.data import DATA_DIR

    out = runner.invoke(app, ["build-data", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    written = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert written == ["language.jsonl", "sentiment.jsonl", "style_casual.jsonl", "topic_food.jsonl"]
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name
