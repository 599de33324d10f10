"""load_sae: local saes/ folders offline, SAELens releases through SAE.from_pretrained, clear errors."""

import pytest
import torch
from sae_helpers import tiny_sae

from workbench.sae.loading import SAELoadError, list_local_saes, load_sae, sae_site


@pytest.fixture()
def local_saes(tmp_path, monkeypatch):
    sae = tiny_sae("blocks.1.hook_resid_post")
    sae.save_model(tmp_path / "tiny-resid_post-1")
    monkeypatch.setenv("WORKBENCH_SAES", str(tmp_path))
    return tmp_path, sae


def test_local_name_and_path_load_the_same_weights(local_saes, tiny):
    root, ref = local_saes
    assert list_local_saes() == ["tiny-resid_post-1"]
    for arg in ("tiny-resid_post-1", str(root / "tiny-resid_post-1")):
        sae = load_sae(arg)
        assert torch.equal(sae.W_dec, ref.W_dec) and not sae.W_dec.requires_grad
        assert sae_site(sae, tiny).short == "resid_post.1"


def test_unknown_local_name_lists_what_exists(local_saes):
    with pytest.raises(SAELoadError, match=r"no local SAE named 'nope'.*tiny-resid_post-1"):
        load_sae("nope")


def test_release_path_offline_fails_clearly(local_saes, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SAELoadError, match=r"offline.*from_pretrained.*tiny-resid_post-1"):
        load_sae(release="gpt2-small-res-jb", sae_id="blocks.8.hook_resid_pre")


def test_release_path_calls_saelens_from_pretrained(monkeypatch):
    """Online, the release path is SAELens' own loader (stubbed here: no hub downloads in tests)."""
    from sae_lens import SAE

    calls = []

    def fake(release, sae_id, device="cpu", dtype="float32"):
        calls.append((release, sae_id, device, dtype))
        return tiny_sae()

    for env in ("HF_HUB_OFFLINE", "WORKBENCH_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(SAE, "from_pretrained", staticmethod(fake))
    load_sae(release="gpt2-small-res-jb", sae_id="blocks.8.hook_resid_pre")
    assert calls == [("gpt2-small-res-jb", "blocks.8.hook_resid_pre", "cpu", "float32")]

    def unreachable(*a, **k):
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(SAE, "from_pretrained", staticmethod(unreachable))
    with pytest.raises(SAELoadError, match=r"ConnectionError.*needs the Hugging Face hub"):
        load_sae(release="gpt2-small-res-jb", sae_id="blocks.8.hook_resid_pre")


def test_argument_errors(tiny):
    with pytest.raises(ValueError, match="either a local SAE name"):
        load_sae()
    with pytest.raises(ValueError, match="either a local SAE name"):
        load_sae("x", release="r", sae_id="i")
    with pytest.raises(ValueError, match="release and an sae_id"):
        load_sae(release="r")
    with pytest.raises(ValueError, match="d_in=48 does not match"):
        sae_site(tiny_sae("blocks.0.hook_resid_post", d_in=48), tiny)
    with pytest.raises(KeyError, match="layer 5"):
        sae_site(tiny_sae("blocks.5.hook_resid_post"), tiny)
