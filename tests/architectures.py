"""Tiny random HookedTransformers of six architecture families, for the architecture matrix (issue 9).

Each model is built from ``HookedTransformerConfig`` alone (no hub, no tokenizer) with random,
non-trivial weights: norm weights spread around 1, norm biases and (where the family has them)
linear biases nonzero. Use token ids, or attach ``TinyTokenizer`` for code that needs strings.

>>> from architectures import FAMILIES, family_model
>>> model = family_model("gemma2")            # eval mode, requires_grad False

Families and what each one exercises (TransformerLens 3.9 config flags that are honoured):

* ``gpt2``: LayerNorm, ``gelu_new``, absolute (learned) positions, all biases.
* ``neox`` (Pythia): ``parallel_attn_mlp``, partial rotary (``rotary_dim = d_head / 2``, NeoX halves),
  LayerNorm, gelu, all biases.
* ``llama`` (SmolLM2): RMSNorm, GQA (``n_key_value_heads``), gated SiLU, rotary, no biases.
* ``gemma2``: ``use_normalization_before_and_after`` (post-attention and post-MLP RMSNorms),
  ``output_logits_soft_cap=30`` and ``attn_scores_soft_cap=50`` with weights scaled so both caps are
  reached, ``use_local_attn`` with ``attn_types`` alternating local/global and a small ``window_size``,
  gated ``gelu_pytorch_tanh``, GQA.
* ``mistral``: sliding window on every layer (``attn_types`` all local, ``window_size`` smaller than
  ``SEQ_LEN``), GQA, RMSNorm, gated SiLU.
* ``qwen2``: nonzero Q/K/V biases (no output or MLP biases), RMSNorm, GQA, gated SiLU, rotary base 1e6.

TransformerLens 3.9 pitfalls met while writing these configs (read from its components):

* ``attn_types``/``window_size`` are ignored unless ``use_local_attn=True`` (every layer is then global).
* ``use_normalization_before_and_after=True`` only builds with ``normalization_type`` RMS/RMSPre; with
  ``"LN"`` ``TransformerBlock.__init__`` fails (``normalization_layer_after`` is never bound).
* The local window is applied in column space (key column > query column − window), which equals the
  unpadded distance for left- or right-padded rows.
* ``hook_mlp_in``, ``hook_attn_in``, ``attn.hook_result`` and ``hook_q_input`` exist on every model but
  only fire under ``use_hook_mlp_in``, ``use_attn_in``, ``use_attn_result``, ``use_split_qkv_input``.
"""

import functools
import warnings

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

FAMILIES = ("gpt2", "neox", "llama", "gemma2", "mistral", "qwen2")
# A test sequence at least this long crosses the local-attention window of gemma2/mistral.
WINDOW = 4
SEQ_LEN = 12

_ARCH = {
    "gpt2": "GPT2LMHeadModel",
    "neox": "GPTNeoXForCausalLM",
    "llama": "LlamaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}


def family_config(
    name: str,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    d_vocab: int = 64,
    n_ctx: int = 64,
    window_size: int = WINDOW,
    **overrides,
) -> HookedTransformerConfig:
    """The ``HookedTransformerConfig`` of a tiny model of family ``name`` (see the module docstring);
    ``overrides`` set or replace config fields (e.g. ``scale_attn_by_inverse_layer_idx=True``)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; families: {', '.join(FAMILIES)}")
    d_head = d_model // n_heads
    common = dict(
        model_name=f"tiny-{name}",
        original_architecture=_ARCH[name],
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_head,
        d_mlp=2 * d_model,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        default_prepend_bos=False,
        seed=seed,
        init_weights=True,
        device="cpu",
    )
    llama_like = dict(
        normalization_type="RMS",
        final_rms=True,
        positional_embedding_type="rotary",
        rotary_adjacent_pairs=False,
        gated_mlp=True,
        act_fn="silu",
        n_key_value_heads=n_heads // 2,
        eps=1e-5,
    )
    if name == "gpt2":
        extra = dict(normalization_type="LN", act_fn="gelu_new", positional_embedding_type="standard")
    elif name == "neox":
        extra = dict(
            normalization_type="LN",
            act_fn="gelu",
            positional_embedding_type="rotary",
            rotary_dim=d_head // 2,
            rotary_adjacent_pairs=False,
            parallel_attn_mlp=True,
        )
    elif name == "llama":
        extra = dict(llama_like, rotary_base=100000)
    elif name == "gemma2":
        extra = dict(
            llama_like,
            act_fn="gelu_pytorch_tanh",
            eps=1e-6,
            use_normalization_before_and_after=True,
            output_logits_soft_cap=30.0,
            attn_scores_soft_cap=50.0,
            use_local_attn=True,
            window_size=window_size,
            attn_types=["local", "global"] * (n_layers // 2) + ["local"] * (n_layers % 2),
        )
    elif name == "mistral":
        extra = dict(
            llama_like,
            use_local_attn=True,
            window_size=window_size,
            attn_types=["local"] * n_layers,
            rotary_base=1000000,
        )
    else:  # qwen2
        extra = dict(llama_like, rotary_base=1000000, eps=1e-6)
    return HookedTransformerConfig(**{**common, **extra, **overrides})


def _has_biases(name: str, param: str) -> bool:
    """Which TransformerLens bias parameters the real family has (the others stay zero, as in HF)."""
    leaf = param.rsplit(".", 1)[-1]
    if leaf == "b_U":
        return False  # none of the six has an unembedding bias
    if name in ("gpt2", "neox"):
        return True
    if name == "qwen2":
        return leaf in ("b_Q", "b_K", "b_V", "_b_K", "_b_V")
    return False


def _calibrate_gemma2(model: HookedTransformer, generator: torch.Generator) -> None:
    """Scale W_Q (per layer) and W_U so that, on random tokens, the largest pre-cap attention score is
    about 3x ``attn_scores_soft_cap`` and the largest pre-cap logit about 2x ``output_logits_soft_cap``:
    both caps then bend the values (tanh(3) = 0.995, tanh(2) = 0.96) rather than being near identity."""
    cfg = model.cfg
    tokens = torch.randint(0, cfg.d_vocab, (4, SEQ_LEN), generator=generator)
    for layer in range(cfg.n_layers):
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith(("hook_rot_q", "hook_rot_k")))
        q = cache[f"blocks.{layer}.attn.hook_rot_q"]
        k = cache[f"blocks.{layer}.attn.hook_rot_k"]
        k = k.repeat_interleave(cfg.n_heads // k.shape[2], dim=2)
        scores = torch.einsum("bqnh,bknh->bnqk", q, k) / model.blocks[layer].attn.attn_scale
        model.blocks[layer].attn.W_Q.mul_(3 * cfg.attn_scores_soft_cap / scores.abs().max())
    _, cache = model.run_with_cache(tokens, names_filter="ln_final.hook_normalized")
    raw = cache["ln_final.hook_normalized"] @ model.W_U
    model.W_U.mul_(2 * cfg.output_logits_soft_cap / raw.abs().max())


@functools.cache
def _state(
    name: str, seed: int, n_layers: int, d_model: int, n_heads: int, d_vocab: int, window_size: int, frozen: tuple
):
    overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in frozen}
    cfg = family_config(
        name,
        seed=seed,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_vocab=d_vocab,
        window_size=window_size,
        **overrides,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            leaf = pname.rsplit(".", 1)[-1]
            if leaf == "w" and p.ndim == 1:  # LayerNorm / RMSNorm gains
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif leaf == "b" and p.ndim == 1:  # LayerNorm biases
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif leaf.startswith(("b_", "_b_")) and _has_biases(name, pname):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        if name == "gemma2":
            _calibrate_gemma2(model, g)
    return cfg, {k: v.clone() for k, v in model.state_dict().items()}


def family_model(
    name: str,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    d_vocab: int = 64,
    window_size: int = WINDOW,
    **overrides,
) -> HookedTransformer:
    """A fresh tiny random model of family ``name`` (eval mode, parameters with ``requires_grad=False``);
    ``overrides`` are config fields passed to ``family_config``.

    Weights are deterministic in the arguments; each call returns a new model (safe to edit)."""
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in overrides.items()))
    cfg, state = _state(name, seed, n_layers, d_model, n_heads, d_vocab, window_size, frozen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(cfg.__class__(**{**cfg.__dict__, "init_weights": False}))
    model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def random_tokens(model: HookedTransformer, batch: int = 3, seq_len: int = SEQ_LEN, *, seed: int = 0) -> torch.Tensor:
    """Random token ids ``[batch, seq_len]`` in the model's vocabulary."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.cfg.d_vocab, (batch, seq_len), generator=g)


def left_padded(rows: list[list[int]], pad_id: int = 0):
    """A ``workbench.tokens.Batch`` of ``rows`` padded on the left (unequal lengths allowed)."""
    from workbench.tokens import pad_rows

    return pad_rows(rows, pad_id, padding_side="left")


def ragged_prompts(model: HookedTransformer, lengths=(5, 9, 7), *, seed: int = 0, padding_side: str = "left"):
    """A ``workbench.tokens.Batch`` of random prompts of unequal ``lengths``, padded with id 0. Token ids
    are drawn from ``[3, d_vocab)``, so they never collide with ``TinyTokenizer``'s pad/BOS/EOS ids
    (TransformerLens' ``generate`` finds left padding by the pad id)."""
    from workbench.tokens import pad_rows

    g = torch.Generator().manual_seed(seed)
    rows = [torch.randint(3, model.cfg.d_vocab, (n,), generator=g).tolist() for n in lengths]
    return pad_rows(rows, 0, padding_side=padding_side)


class TinyTokenizer:
    """A minimal tokenizer for tiny models: one token per whitespace-separated word, id from a stable
    hash into ``[3, d_vocab)``; ids 0/1/2 are pad/BOS/EOS. Enough for ``workbench.tokens.encode``,
    ``tokenize`` and ``concepts.extract`` (``__call__(text, add_special_tokens=False)``, ``decode``)."""

    pad_token_id = 0
    bos_token_id = 1
    eos_token_id = 2
    padding_side = "left"

    def __init__(self, d_vocab: int) -> None:
        if d_vocab < 4:
            raise ValueError(f"TinyTokenizer needs d_vocab >= 4, got {d_vocab}")
        self.d_vocab = d_vocab
        self._words: dict[int, str] = {}

    def _id(self, word: str) -> int:
        import zlib

        i = 3 + zlib.crc32(word.encode()) % (self.d_vocab - 3)
        self._words.setdefault(i, word)
        return i

    def __call__(self, text: str, add_special_tokens: bool = False, **_):
        ids = [self._id(w) for w in text.split()]
        if add_special_tokens:
            ids = [self.bos_token_id, *ids]
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def encode(self, text: str, add_special_tokens: bool = False, **_) -> list[int]:
        return self(text, add_special_tokens)["input_ids"]

    def decode(self, ids, **_) -> str:
        if isinstance(ids, int):
            ids = [ids]
        return " ".join(self._words.get(int(i), f"<{int(i)}>") for i in ids)


def with_tokenizer(model: HookedTransformer) -> HookedTransformer:
    """Attach a ``TinyTokenizer`` to ``model`` (in place) and return it."""
    model.tokenizer = TinyTokenizer(model.cfg.d_vocab)
    return model


__all__ = [
    "FAMILIES",
    "SEQ_LEN",
    "WINDOW",
    "TinyTokenizer",
    "family_config",
    "family_model",
    "left_padded",
    "ragged_prompts",
    "random_tokens",
    "with_tokenizer",
]
