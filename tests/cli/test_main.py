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
