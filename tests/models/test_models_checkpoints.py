"""Local checkpoints: tiny random Hugging Face checkpoints of every supported architecture, written
with ``transformers`` and loaded with ``load_model(path)``, against the Hugging Face model."""

import warnings

import pytest
import torch
from tiny_checkpoints import CONFIGS, CTX, VOCAB, tiny_tokenizer, write_checkpoint
from transformers import AutoTokenizer

from workbench.models import ModelLoadError, load_model, supported_architectures

# The four named families first; then the rest of what TransformerLens converts.
NAMED = ["GPT2LMHeadModel", "LlamaForCausalLM", "Gemma2ForCausalLM", "Qwen2ForCausalLM"]
OTHERS = [a for a in supported_architectures() if a not in NAMED]


def _ids(batch: int = 2, n: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.randint(4, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


def _worst_logp_gap(model, hf, ids) -> float:
    with torch.no_grad():
        ours = torch.log_softmax(model(ids).double(), -1)
        ref = torch.log_softmax(hf(ids).logits.double(), -1)
    return (ours - ref).abs().max().item()


def test_every_supported_architecture_has_a_tiny_checkpoint():
    assert set(CONFIGS) == set(supported_architectures())
    assert set(NAMED) <= set(supported_architectures())


@pytest.mark.parametrize("arch", NAMED + OTHERS)
def test_checkpoint_log_probs_match_hugging_face(arch, tmp_path):
    hf = write_checkpoint(tmp_path, arch)
    model = load_model(tmp_path)
    assert model.cfg.original_architecture == arch
    assert model.cfg.n_layers == hf.config.num_hidden_layers and model.cfg.d_vocab == VOCAB
    assert not any(p.requires_grad for p in model.parameters())
    ids = _ids()  # 40 tokens: longer than every sliding window in the tiny configs (4)
    assert _worst_logp_gap(model, hf, ids) < 1e-4


def test_gemma2_features_are_on_and_matter(tmp_path):
    """The Gemma-2 checkpoint exercises what TransformerLens has no config-driven branch for: the
    parity test fails when the soft-cap, the attention scale or the sliding window is dropped."""
    hf = write_checkpoint(tmp_path, "Gemma2ForCausalLM")
    model = load_model(tmp_path)
    cfg = model.cfg
    assert cfg.output_logits_soft_cap == 3.0 and cfg.attn_scores_soft_cap == 2.0
    assert cfg.attn_scale == pytest.approx(12**0.5) and cfg.use_normalization_before_and_after
    assert cfg.attn_types == ["local", "global", "local"] and cfg.window_size == 4 and cfg.use_local_attn
    ids = _ids()
    assert _worst_logp_gap(model, hf, ids) < 1e-4

    def gap_with(obj, attr, value) -> float:
        saved = getattr(obj, attr)
        setattr(obj, attr, value)
        try:
            return _worst_logp_gap(model, hf, ids)
        finally:
            setattr(obj, attr, saved)

    # each would fail the parity test's 1e-4
    assert gap_with(cfg, "output_logits_soft_cap", -1.0) > 1e-4
    assert gap_with(cfg, "window_size", 64) > 1e-4  # the local layers' window, widened to the whole context
    for block in model.blocks:  # attention scale sqrt(query_pre_attn_scalar), not sqrt(d_head) = 4
        assert gap_with(block.attn, "attn_scale", 4.0) > 1e-4
    assert _worst_logp_gap(model, hf, ids) < 1e-4


def test_tokenizer_is_loaded_and_tokenises_as_hugging_face(tmp_path):
    hf = write_checkpoint(tmp_path, "LlamaForCausalLM", tokenizer=True)
    model = load_model(str(tmp_path))
    tok = AutoTokenizer.from_pretrained(tmp_path)  # Hugging Face's own reading of the directory
    text = "the big cat sat on the red mat and ran far away"
    ids = tok(text, return_tensors="pt").input_ids
    assert torch.equal(model.to_tokens(text), ids)
    assert model.tokenizer is not None and model.cfg.tokenizer_name == str(tmp_path.resolve())
    assert _worst_logp_gap(model, hf, ids) < 1e-4


def test_tokenizer_that_adds_bos_keeps_adding_it(tmp_path):
    from tokenizers.processors import TemplateProcessing

    write_checkpoint(tmp_path, "LlamaForCausalLM")
    tok = tiny_tokenizer()
    tok._tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save_pretrained(tmp_path)
    model = load_model(tmp_path)
    text = "a red house"
    ref = AutoTokenizer.from_pretrained(tmp_path)(text).input_ids
    assert model.to_tokens(text)[0].tolist() == ref == [1, 5, 17, 20]
    assert model.cfg.default_prepend_bos
    assert model.to_tokens(text, prepend_bos=False)[0].tolist() == [5, 17, 20]


def test_default_prepend_bos_overrides_the_tokenizer(tmp_path):
    write_checkpoint(tmp_path, "LlamaForCausalLM", tokenizer=True)
    model = load_model(tmp_path, default_prepend_bos=True)
    assert model.to_tokens("a cat")[0].tolist() == [1, 5, 6]


def test_no_tokenizer_means_token_ids_only(tmp_path):
    write_checkpoint(tmp_path, "GPT2LMHeadModel")
    model = load_model(tmp_path)
    assert model.tokenizer is None and model.cfg.tokenizer_name is None
    assert model(_ids(1, 5)).shape == (1, 5, VOCAB)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_is_applied(dtype, tmp_path):
    hf = write_checkpoint(tmp_path, "Qwen2ForCausalLM")
    model = load_model(tmp_path, dtype=dtype)
    assert model.cfg.dtype == dtype and model.W_E.dtype == dtype and model.W_U.dtype == dtype
    if dtype == torch.float64:
        hf = hf.double()
        assert _worst_logp_gap(model, hf, _ids()) < 1e-6


def test_unsupported_architecture_lists_the_supported_ones(tmp_path):
    from transformers import AutoModelForCausalLM, FalconConfig

    cfg = FalconConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError) as err:
        load_model(tmp_path)
    msg = str(err.value)
    assert "'FalconForCausalLM'" in msg and "model_type 'falcon'" in msg and str(tmp_path) in msg
    for arch in supported_architectures():
        assert arch in msg


def test_a_setting_transformer_lens_ignores_is_refused_by_name(tmp_path):
    write_checkpoint(tmp_path, "LlamaForCausalLM", attention_bias=True)
    with pytest.raises(ModelLoadError, match=r"attention_bias=True"):
        load_model(tmp_path)
    write_checkpoint(tmp_path, "Qwen2ForCausalLM", use_sliding_window=True, sliding_window=4)
    with pytest.raises(ModelLoadError, match=r"use_sliding_window=True"):
        load_model(tmp_path)
    write_checkpoint(
        tmp_path, "MistralForCausalLM", rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}
    )
    with pytest.raises(ModelLoadError, match=r"rope_type \['linear'\]"):
        load_model(tmp_path)


def test_llama3_rope_scaling_converts(tmp_path):
    rope = {
        "rope_type": "llama3",
        "rope_theta": 5e5,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }
    hf = write_checkpoint(tmp_path, "LlamaForCausalLM", rope_parameters=rope, hidden_size=64)
    assert _worst_logp_gap(load_model(tmp_path), hf, _ids(1, CTX)) < 1e-4


def test_conversion_is_verified_against_hugging_face(tmp_path, monkeypatch):
    """A conversion that computes something else is refused at load (here: a converter bug)."""
    from transformer_lens import loading_from_pretrained as tl_loading

    write_checkpoint(tmp_path, "LlamaForCausalLM")
    real = tl_loading.get_pretrained_state_dict

    def broken(*args, **kwargs):
        state = real(*args, **kwargs)
        state["blocks.1.mlp.W_out"] = state["blocks.1.mlp.W_out"] * 1.5
        return state

    monkeypatch.setattr(tl_loading, "get_pretrained_state_dict", broken)
    with pytest.raises(ModelLoadError, match=r"differs from the Hugging Face model"):
        load_model(tmp_path)
    from workbench.models import load_checkpoint

    assert load_checkpoint(tmp_path, verify=False).cfg.n_layers == 2


@pytest.mark.parametrize(
    "files, expected",
    [
        (
            {},
            r"holds no model \(found: nothing\); expected a Hugging Face model directory \(config.json \+ "
            r"\*.safetensors weights\) or a .gguf file",
        ),
        ({"notes.txt": "x"}, r"holds no model \(found: notes.txt\)"),
        ({"config.json": "{}"}, r"has config.json but no \*.safetensors weights"),
        ({"config.json": "{}", "pytorch_model.bin": "x"}, r"pytorch_model.bin: pickled weights are not loaded"),
        ({"a.gguf": "x", "b.gguf": "x"}, r"holds 2 .gguf files \(a.gguf, b.gguf\); pass the one to load"),
    ],
)
def test_a_path_without_a_model_says_what_was_expected(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ModelLoadError, match=expected):
        load_model(tmp_path)


def test_missing_paths_and_stray_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file or directory; expected a Hugging Face model dir"):
        load_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"nope\.gguf"):
        load_model("nope.gguf")
    with pytest.raises(FileNotFoundError):
        load_model("./no/such/dir")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"is a file but not a .gguf file \(pass the directory that holds it\)"):
        load_model(tmp_path / "config.json")


def test_a_corrupt_config_is_a_load_error(tmp_path):
    write_checkpoint(tmp_path, "GPT2LMHeadModel")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_model(tmp_path)
