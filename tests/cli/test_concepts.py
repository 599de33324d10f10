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
