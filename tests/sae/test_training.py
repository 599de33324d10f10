"""The training library's pieces on a tiny model and synthetic activations."""

import pytest
import torch
from sae_lens import SAE, TopKSAE

from workbench.artifacts import ArtifactError
from workbench.models import tiny_model
from workbench.sae.training import (
    TrainConfig,
    activation_batches,
    cache_activations,
    check_layers,
    load_activations,
    save_sae,
    train_one,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; more only oversubscribe a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match=r"TrainConfig.k"):
        TrainConfig(k=5000)
    with pytest.raises(ValueError, match="warmup_frac"):
        TrainConfig(warmup_frac=0.5, decay_frac=0.5)
    with pytest.raises(TypeError, match=r"TrainConfig\.d_sae|parameter 'd_sae'"):  # ours, or jaxtyping's check
        TrainConfig(d_sae=4.5)
    with pytest.raises(ValueError, match=r"TrainConfig.lr"):
        TrainConfig(lr=float("nan"))


def test_layers_are_checked_against_the_model():
    model = tiny_model(n_layers=3)
    assert check_layers(model, [0, 2]) == (0, 2)
    with pytest.raises(ValueError, match=r"\[0, 2\].*has 3"):
        check_layers(model, [3])
    with pytest.raises(ValueError, match="distinct"):
        check_layers(model, [1, 1])


def test_activation_batches_cover_each_epoch_once():
    acts = torch.arange(10, dtype=torch.float16)[:, None].repeat(1, 3)
    it = activation_batches(acts, batch_size=5, seed=0)
    epoch = torch.cat([next(it), next(it)])
    assert sorted(epoch[:, 0].tolist()) == list(range(10)) and epoch.dtype == torch.float32


def test_cache_activations_matches_run_with_cache_and_resumes(tmp_path):
    model = tiny_model(n_layers=2, d_model=32, d_vocab=50, seed=0)
    tokens = torch.randint(0, 50, (5, 6), generator=torch.Generator().manual_seed(0))
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    paths = cache_activations(
        model, tokens, hooks, tmp_path, "train", skip_positions=1, batch_size=2, shard_seqs=2, progress=False
    )
    assert [p.name for p in paths] == [
        "train_000000-000002.safetensors",
        "train_000002-000004.safetensors",
        "train_000004-000005.safetensors",
    ]
    _, cache = model.run_with_cache(tokens)
    for h in hooks:
        got = load_activations(paths, h)
        want = cache[h][:, 1:].reshape(-1, 32)
        assert got.dtype == torch.float16 and got.shape == (5 * 5, 32)
        torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-3)
    stamp = paths[0].stat().st_mtime_ns
    assert cache_activations(model, tokens, hooks, tmp_path, "train", shard_seqs=2, progress=False) == paths
    assert paths[0].stat().st_mtime_ns == stamp
    with pytest.raises(ArtifactError, match="missing tensor"):
        load_activations(paths, "blocks.0.hook_resid_pre")


def test_train_save_load_roundtrip(tmp_path):
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(16, 32, generator=g)
    codes = torch.rand(2048, 16, generator=g) * (torch.rand(2048, 16, generator=g) < 0.2)
    acts = (codes @ basis + 3.0).half()
    cfg = TrainConfig(d_sae=32, k=4, epochs=8.0, batch_size=256, lr=3e-3, dead_window=5)
    model = tiny_model(n_layers=2, d_model=32, d_vocab=50, seed=0)
    training_sae, info = train_one(acts, 1, cfg, model=model)
    assert info["samples_seen"] == 8 * 2048 and info["steps"] == 64
    save_sae(training_sae, tmp_path / "sae", "float16")
    sae = SAE.load_from_disk(tmp_path / "sae", dtype="float32")
    assert isinstance(sae, TopKSAE) and sae.cfg.k == 4 and sae.cfg.metadata.hook_name == "blocks.1.hook_resid_post"
    assert sae.cfg.metadata.model_name == model.cfg.model_name and sae.device.type == "cpu"
    assert SAE.load_from_disk(tmp_path / "sae").W_dec.dtype == torch.float16
    x = acts[:256].float()
    with torch.no_grad():
        want = training_sae.decode(training_sae.encode(x))
        got = sae.decode(sae.encode(x))
        fvu = (x - got).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert float(fvu) < 0.5  # it learned something (the mean alone gives 1)
    assert float((got - want).pow(2).sum() / (want - want.mean(0)).pow(2).sum()) < 1e-2  # fp16 copy is faithful


def test_train_one_refuses_activations_of_another_width():
    model = tiny_model(n_layers=2, d_model=32, d_vocab=50)
    with pytest.raises(ValueError, match="d_model=32"):
        train_one(torch.zeros(600, 16), 1, TrainConfig(d_sae=32, k=4), model=model)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_one(torch.zeros(600, 32), 5, TrainConfig(d_sae=32, k=4), model=model)
