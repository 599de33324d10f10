"""The SAE training recipe: its config, its commands, the cards of the shipped SAEs, and one tiny end-to-end run."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from workbench.experiments.sae_training import (
    RecipeConfig,
    default_name_prefix,
    explicit_command,
    legacy_command,
    refresh_cards,
)

SAES = Path(__file__).parents[2] / "saes"


def test_recipe_config_validation_names_the_field():
    with pytest.raises(ValueError, match=r"RecipeConfig.layers"):
        RecipeConfig(layers=(6, 6))
    with pytest.raises(ValueError, match=r"RecipeConfig.layers"):
        RecipeConfig(layers=(-1,))
    with pytest.raises(ValueError, match=r"TrainConfig.k"):
        RecipeConfig(k=5000)
    with pytest.raises(ValueError, match="save_dtype"):
        RecipeConfig(save_dtype="int8")
    with pytest.raises(ValueError, match="unknown recipe config field"):
        RecipeConfig.from_dict({"layers": [1], "bogus": 3})
    assert RecipeConfig(layers=(40,)).layers == (40,)  # the model's layer count is checked when it is loaded


def test_cli_args_round_trip_through_the_typer_command(monkeypatch):
    """``workbench sae train <cfg.cli_args()>`` builds the same config (run and model loading stubbed)."""
    from typer.testing import CliRunner

    import workbench.experiments.sae_training as recipe
    import workbench.models
    from workbench.cli import app
    from workbench.models import tiny_model

    seen = {}
    monkeypatch.setattr(recipe, "run", lambda cfg, **kw: seen.update(cfg=cfg, **kw))
    monkeypatch.setattr(workbench.models, "load_model", lambda name, device="cpu": tiny_model(n_layers=12))
    cfg = RecipeConfig(layers=(3, 9), k=32, lr=2e-3, epochs=2.5, name_prefix="mine", save_dtype="float32")
    r = CliRunner().invoke(app, ["sae", "train", *cfg.cli_args()])
    assert r.exit_code == 0, r.output
    assert seen["cfg"] == cfg and seen["extract_only"] is False
    r = CliRunner().invoke(app, ["sae", "train", "--layers", "3,12"])
    assert r.exit_code == 2 and "--layers" in r.output and "[0, 11]" in r.output


def test_default_name_prefix():
    assert default_name_prefix(SimpleNamespace(cfg=SimpleNamespace(model_name="SmolLM2-135M-Instruct"))) == "smollm2"
    assert default_name_prefix(SimpleNamespace(cfg=SimpleNamespace(model_name="gemma-2-2b"))) == "gemma-2-2b"
    assert default_name_prefix(SimpleNamespace(cfg=SimpleNamespace(model_name="EleutherAI/pythia 70m"))) == (
        "eleutherai-pythia-70m"
    )


def test_legacy_command():
    assert legacy_command("python -m workbench.sae.train --layers 6 15 24 --k 8") == (
        "workbench sae train --layers 6,15,24 --k 8"
    )
    assert legacy_command("workbench sae train --k 8") == "workbench sae train --k 8"


def test_refreshed_cards_of_the_shipped_saes_change_only_the_commands(tmp_path):
    """Re-rendering the shipped cards from their card.json reproduces the committed README files, apart
    from the training commands (now ``workbench sae train``) and the index's pointer to the recipe."""
    if not any(SAES.glob("*/card.json")):
        pytest.skip("no shipped SAE cards in this checkout")
    for d in SAES.glob("*/"):
        if (d / "card.json").exists():
            (tmp_path / d.name).mkdir()
            for f in ("card.json", "README.md"):
                shutil.copy(d / f, tmp_path / d.name / f)
    shutil.copy(SAES / "README.md", tmp_path / "README.md")
    refresh_cards(tmp_path)
    for old in [SAES / "README.md", *SAES.glob("*/README.md")]:
        new = tmp_path / old.relative_to(SAES)
        a, b = old.read_text().splitlines(), new.read_text().splitlines()
        assert len(a) == len(b)
        changed = [(x, y) for x, y in zip(a, b) if x != y]
        assert changed, "the old commands should have been rewritten"
        for x, y in changed:
            assert "workbench.sae.train" in x and "workbench sae train" in y
    import json

    card = json.loads((SAES / "smollm2-resid_post-15-topk4096" / "card.json").read_text())
    cmd = explicit_command(card["config"])
    assert (
        cmd.startswith("workbench sae train --layers 6,15,24 --model smollm2-135m-instruct") and "--d-sae 4096" in cmd
    )


@pytest.mark.embedded
def test_tiny_run_on_the_embedded_model(embedded, tmp_path):
    """Corpus → activation cache → training → evaluation → card, with a budget of seconds."""
    from sae_lens import SAE

    from workbench.artifacts import load_tensors
    from workbench.experiments.sae_training import run

    cfg = RecipeConfig(
        layers=(1,),
        d_sae=64,
        k=4,
        train_seqs=4,
        heldout_act_seqs=2,
        eval_seqs=2,
        epochs=1.0,
        batch_size=64,
        dead_window=2,
        shard_seqs=2,
        out_dir=str(tmp_path / "saes"),
        save_dtype="float32",
    )
    res = run(cfg, model=embedded, log=lambda m: None, progress=False, activations_root=tmp_path / "acts")
    assert set(res) == {1} and 0 < res[1]["fvu"] < 2
    folder = tmp_path / "saes" / "smollm2-resid_post-1-topk64"
    sae = SAE.load_from_disk(folder)
    assert sae.cfg.metadata.model_name == embedded.cfg.model_name and sae.cfg.d_in == embedded.cfg.d_model
    stats, meta = load_tensors(folder / "latent_stats", kind="sae_latent_stats")
    assert meta["n_tokens"] == 2 * 127 and stats["heldout_fire_counts"].shape == (64,)
    text = (folder / "README.md").read_text()
    assert "workbench sae train --layers 1 --model smollm2-135m-instruct" in text
    assert "smollm2-resid_post-1-topk64" in (tmp_path / "saes" / "README.md").read_text()
