"""GGUF files: dequantised by transformers, converted by TransformerLens, cached as safetensors.
A tiny random Llama GGUF (Q8_0 matrices) is written with the ``gguf`` package."""

import os

import pytest
import torch
from tiny_checkpoints import write_gguf

from workbench.models import ModelLoadError, load_model
from workbench.models import checkpoints as ckpt


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def gguf_file(tmp_path):
    (tmp_path / "weights").mkdir()
    return write_gguf(tmp_path / "weights" / "tiny.gguf")


def _hf_log_probs(file, ids):
    hf, _ = ckpt.load_hf_gguf(file)
    with torch.no_grad():
        return torch.log_softmax(hf(ids).logits.double(), -1)


def test_gguf_loads_with_parity_to_the_dequantised_hugging_face_model(gguf_file, cache):
    model = load_model(gguf_file)
    assert model.cfg.original_architecture == "LlamaForCausalLM" and model.cfg.model_name == "tiny"
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.n_key_value_heads, model.cfg.d_mlp) == (2, 32, 2, 64)
    ids = torch.randint(3, 64, (2, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = torch.log_softmax(model(ids).double(), -1)
    assert (ours - _hf_log_probs(gguf_file, ids)).abs().max().item() < 1e-4
    # its tokenizer came along, and tokenises as the GGUF's own tokenizer does
    _, tok = ckpt.load_hf_gguf(gguf_file)
    assert model.to_tokens("abc de")[0].tolist() == tok("abc de").input_ids == [3, 4, 5, 29, 6, 7]


def test_a_directory_holding_one_gguf_file_loads_it(gguf_file, cache):
    assert load_model(gguf_file.parent).cfg.model_name == "tiny"


def test_the_conversion_is_cached_and_reused(gguf_file, cache, monkeypatch):
    first = load_model(gguf_file)
    target = ckpt.gguf_cache_path(gguf_file)
    assert target.parent.parent == cache and target.name == f"v{ckpt.CACHE_FORMAT}"
    assert (target / "model.safetensors").is_file() and (target / "tokenizer").is_dir()
    meta = __import__("json").loads((target / "model.json").read_text())
    assert meta["kind"] == ckpt.CONVERTED_KIND and meta["source"] == str(gguf_file.resolve())
    assert meta["tl_config"]["original_architecture"] == "LlamaForCausalLM"

    def no_dequantising(*args, **kwargs):
        raise AssertionError("the cached conversion must be used")

    monkeypatch.setattr(ckpt, "load_hf_gguf", no_dequantising)
    second = load_model(gguf_file, dtype=torch.float64)
    ids = torch.randint(3, 64, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(second(ids).float(), first(ids), atol=1e-5, rtol=1e-5)
    assert second.cfg.dtype == torch.float64 and second.W_E.dtype == torch.float64


def test_a_changed_file_or_a_broken_cache_is_converted_again(gguf_file, cache, monkeypatch):
    load_model(gguf_file)
    target = ckpt.gguf_cache_path(gguf_file)
    calls = []
    real = ckpt._convert_gguf
    monkeypatch.setattr(ckpt, "_convert_gguf", lambda *a: calls.append(a) or real(*a))
    load_model(gguf_file)
    assert calls == []
    write_gguf(gguf_file, seed=1)  # new weights in the same place
    st = gguf_file.stat()
    os.utime(gguf_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    new = load_model(gguf_file)
    assert len(calls) == 1
    ids = torch.randint(3, 64, (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = torch.log_softmax(new(ids).double(), -1)
    assert (ours - _hf_log_probs(gguf_file, ids)).abs().max().item() < 1e-4
    (target / "model.json").write_text("{broken")
    load_model(gguf_file)
    assert len(calls) == 2


def test_an_unsupported_gguf_architecture_lists_the_supported_ones(tmp_path, cache):
    file = write_gguf(tmp_path / "falcon.gguf", architecture="falcon")
    with pytest.raises(
        ModelLoadError, match=r"'FalconForCausalLM' \(model_type 'falcon'\).*Supported: .*LlamaForCausalLM"
    ):
        load_model(file)
    assert not cache.exists()


def test_a_file_that_is_not_gguf_is_a_load_error(tmp_path, cache):
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match=r"fake\.gguf: transformers cannot read this GGUF file"):
        load_model(tmp_path / "fake.gguf")
