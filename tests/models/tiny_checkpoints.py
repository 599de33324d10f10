"""Tiny random Hugging Face checkpoints written with ``transformers`` (``from_config`` +
``save_pretrained``), one small config per architecture, and a tiny offline tokenizer."""

import warnings
from pathlib import Path

import torch

VOCAB = 96
CTX = 64
WORDS = "the a cat dog sat on mat and ran far away big small red blue green house tree sky sun".split()


def _common(**extra) -> dict:
    base = dict(vocab_size=VOCAB, max_position_embeddings=CTX, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    base.update(extra)
    return base


def _llama_like(**extra) -> dict:
    return _common(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, **extra
    )


def _gemma(**extra) -> dict:
    return _common(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        **extra,
    )


# config class name -> (keyword arguments); every dimension tiny, every optional feature exercised
CONFIGS = {
    "GPT2LMHeadModel": ("GPT2Config", _common(n_embd=32, n_layer=2, n_head=4, n_positions=CTX)),
    "GPTNeoForCausalLM": (
        "GPTNeoConfig",
        _common(hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]], window_size=4),
    ),
    "GPTJForCausalLM": ("GPTJConfig", _common(n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=CTX)),
    "GPTNeoXForCausalLM": (
        "GPTNeoXConfig",
        _common(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, rotary_pct=0.5),
    ),
    "OPTForCausalLM": (
        "OPTConfig",
        _common(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, word_embed_proj_dim=32),
    ),
    "BloomForCausalLM": ("BloomConfig", _common(hidden_size=32, n_layer=2, n_head=4)),
    "LlamaForCausalLM": ("LlamaConfig", _llama_like(rope_theta=5000.0, rms_norm_eps=1e-5)),
    "MistralForCausalLM": ("MistralConfig", _llama_like(sliding_window=4, head_dim=8)),
    "MixtralForCausalLM": ("MixtralConfig", _llama_like(num_local_experts=4, num_experts_per_tok=2)),
    "Qwen2ForCausalLM": ("Qwen2Config", _llama_like()),
    "Qwen3ForCausalLM": ("Qwen3Config", _llama_like(head_dim=8)),
    "Phi3ForCausalLM": ("Phi3Config", _llama_like(sliding_window=None)),
    "OlmoeForCausalLM": ("OlmoeConfig", _llama_like(num_experts=4, num_experts_per_tok=2)),
    "Olmo3ForCausalLM": ("Olmo3Config", _llama_like(sliding_window=4)),
    "GemmaForCausalLM": ("GemmaConfig", _gemma()),
    "Gemma2ForCausalLM": (
        "Gemma2Config",
        _gemma(
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            query_pre_attn_scalar=12,
            attn_logit_softcapping=2.0,
            final_logit_softcapping=3.0,
        ),
    ),
    "Gemma3ForCausalLM": (
        "Gemma3TextConfig",
        _gemma(
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            query_pre_attn_scalar=12,
        ),
    ),
}


def hf_config(arch: str, **overrides):
    import transformers

    cls_name, kwargs = CONFIGS[arch]
    cfg = getattr(transformers, cls_name)(**{**kwargs, **overrides})
    cfg.architectures = [arch]
    return cfg


def randomise_norms(model, seed: int = 0) -> None:
    """Norm weights and biases off their init (1 / 0), so that a dropped or misplaced norm shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=g))


def tiny_tokenizer():
    """A word-level tokenizer over ``WORDS`` (ids 0-3 special), built offline with ``tokenizers``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def write_checkpoint(directory: Path, arch: str, *, tokenizer: bool = False, seed: int = 0, **overrides):
    """Write a random ``arch`` checkpoint (safetensors) to ``directory``; returns the HF model."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(hf_config(arch, **overrides), dtype=torch.float32)
    randomise_norms(model, seed)
    model.eval()
    model.save_pretrained(directory)
    if tokenizer:
        tiny_tokenizer().save_pretrained(directory)
    return model


GGUF_CHARS = [*"abcdefghijklmnopqrstuvwxyz", "Ġ"]  # byte-level BPE: "Ġ" is the space


def write_gguf(path: Path, *, architecture: str = "llama", seed: int = 0, quantise: bool = True) -> Path:
    """A tiny random Llama GGUF file (written with the ``gguf`` package; attention and MLP matrices
    Q8_0-quantised, so that reading it dequantises) with a byte-level BPE tokenizer of single
    characters. ``architecture`` other than "llama" writes only the metadata of that architecture."""
    import gguf
    import numpy as np

    V, D, H, KV, F, L = 64, 32, 4, 2, 64, 2
    w = gguf.GGUFWriter(str(path), architecture)
    w.add_name("tiny")
    w.add_context_length(CTX)
    w.add_embedding_length(D)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_layer_norm_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(D // H)
    w.add_vocab_size(V)
    tokens = ["<unk>", "<s>", "</s>", *GGUF_CHARS]
    tokens += [f"<extra{i}>" for i in range(V - len(tokens))]
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 3] + [1] * (V - 3))
    w.add_token_scores([0.0] * V)
    w.add_token_merges([])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    rng = np.random.default_rng(seed)

    def tensor(name, *shape, norm=False):
        a = (1.0 + 0.3 * rng.standard_normal(shape) if norm else 0.2 * rng.standard_normal(shape)).astype(np.float32)
        if quantise and len(shape) == 2 and name.startswith("blk."):
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, a)

    if architecture == "llama":
        tensor("token_embd.weight", V, D)
        tensor("output_norm.weight", D, norm=True)
        tensor("output.weight", V, D)
        for i in range(L):
            tensor(f"blk.{i}.attn_norm.weight", D, norm=True)
            tensor(f"blk.{i}.ffn_norm.weight", D, norm=True)
            tensor(f"blk.{i}.attn_q.weight", D, D)
            tensor(f"blk.{i}.attn_k.weight", KV * D // H, D)
            tensor(f"blk.{i}.attn_v.weight", KV * D // H, D)
            tensor(f"blk.{i}.attn_output.weight", D, D)
            tensor(f"blk.{i}.ffn_gate.weight", F, D)
            tensor(f"blk.{i}.ffn_up.weight", F, D)
            tensor(f"blk.{i}.ffn_down.weight", D, F)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
