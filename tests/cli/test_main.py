import pytest
from typer.testing import CliRunner

from workbench.cli import app


@pytest.mark.embedded
def test_info_prints_model_sites_and_cache(embedded):
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for text in ("SmolLM2-135M-Instruct", "resid_post", "blocks.0.hook_resid_post", "cache", "576"):
        assert text in result.output


def test_help_lists_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "info" in result.output and "bench" in result.output


@pytest.fixture()
def toy_app(monkeypatch):
    """``workbench.cli.main.app`` replaced by a typer app whose commands exit with a code, fail on a bad
    option, raise a user error or are interrupted."""
    import importlib

    import typer

    cli_main = importlib.import_module("workbench.cli.main")  # the module (workbench.cli.main is also the function)

    toy = typer.Typer()

    @toy.command()
    def fail(code: int = 3) -> None:
        raise typer.Exit(code)

    @toy.command()
    def ok() -> None:
        pass

    @toy.command()
    def bad(value: int = typer.Option(1)) -> None:
        raise ValueError(f"value {value} is not valid")

    @toy.command()
    def interrupt() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "app", toy)
    return cli_main.main


def test_main_passes_a_commands_exit_code_on(toy_app):
    with pytest.raises(SystemExit) as exc:
        toy_app(["fail", "--code", "3"])
    assert exc.value.code == 3
    toy_app(["ok"])  # exit code 0: returns


def test_main_turns_bad_options_and_user_errors_into_exit_2(toy_app, capsys):
    with pytest.raises(SystemExit) as exc:
        toy_app(["bad", "--value", "x"])  # not an int: typer's own BadParameter
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        toy_app(["bad", "--value", "5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "value 5 is not valid" in err and len(err.strip().splitlines()) == 1


def test_main_exits_130_on_ctrl_c(toy_app):
    with pytest.raises(SystemExit) as exc:
        toy_app(["interrupt"])
    assert exc.value.code == 130
