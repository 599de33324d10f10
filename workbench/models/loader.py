"""``load_model``: one entry for the embedded model, local checkpoints and TransformerLens' catalogue."""

import os
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from transformer_lens import HookedTransformer

from .base import ModelLoadError, check_device, check_dtype, check_name_or_path, check_prepend_bos
from .checkpoints import load_checkpoint
from .embedded import EMBEDDED_ALIASES, EMBEDDED_MODEL, load_embedded

_PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


def _local_path(name_or_path: Union[str, os.PathLike]) -> Optional[Path]:
    """A path when ``name_or_path`` is one: any ``os.PathLike``; a string that exists on disk, starts
    like a path (``/``, ``./``, ``../``, ``~``) or ends in ``.gguf``. Otherwise None (a model name)."""
    if isinstance(name_or_path, os.PathLike):
        return Path(name_or_path).expanduser()
    p = Path(name_or_path).expanduser()
    if p.exists() or name_or_path.startswith(_PATH_PREFIXES) or name_or_path.lower().endswith(".gguf"):
        return p
    return None


def _from_pretrained(
    name: str, device: torch.device, dtype: torch.dtype, default_prepend_bos: Optional[bool], kwargs: dict
) -> HookedTransformer:
    from transformer_lens import loading_from_pretrained as tl_loading

    try:
        tl_loading.get_official_model_name(name)
    except ValueError:
        raise ModelLoadError(
            f"'{name}' is neither an existing local path nor a model name that TransformerLens knows "
            f"(transformer_lens.loading.OFFICIAL_MODEL_NAMES, e.g. 'gpt2', 'pythia-70m'). For local weights pass "
            f"a directory (config.json + *.safetensors) or a .gguf file; offline, the embedded model works: "
            f"load_model('{EMBEDDED_MODEL}')."
        ) from None
    if default_prepend_bos is not None:
        kwargs = {**kwargs, "default_prepend_bos": default_prepend_bos}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # TransformerLens annotates dtype by its default ("float32") but converts a str and takes a torch.dtype
            return HookedTransformer.from_pretrained(
                name,
                device=str(device),
                dtype=dtype,  # pyright: ignore[reportArgumentType]
                **kwargs,
            )
    except (OSError, ConnectionError, TimeoutError) as err:  # hub unreachable, or weights not cached
        first = str(err).splitlines()[0] if str(err) else ""
        raise ModelLoadError(
            f"Could not load '{name}' through TransformerLens' from_pretrained: {err.__class__.__name__}: "
            f"{first}. This needs the Hugging Face hub (or a local HF cache). Offline, use the embedded "
            f"model: load_model('{EMBEDDED_MODEL}'), or pass the path of downloaded weights."
        ) from err


def load_model(
    name_or_path: Union[str, os.PathLike] = EMBEDDED_MODEL,
    *,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
    default_prepend_bos: Optional[bool] = None,
    **from_pretrained_kwargs,
) -> HookedTransformer:
    """Load a ``HookedTransformer``.

    * ``"smollm2-135m-instruct"`` (the default; also ``"smollm2"``) is the embedded model, which works
      offline (a GGUF file converted once, then loaded from the cache in a few seconds).
    * A **path** (an ``os.PathLike``, or a string that exists, starts with ``/``, ``./``, ``../``, ``~``
      or ends in ``.gguf``) is a local checkpoint: a Hugging Face model directory (``config.json`` +
      ``*.safetensors``) or a ``.gguf`` file, converted by TransformerLens (see
      ``workbench.models.checkpoints.load_checkpoint``).
    * Every other name goes to ``HookedTransformer.from_pretrained`` with ``from_pretrained_kwargs``
      (``"gpt2"``, ``"pythia-70m"``, ...; TransformerLens' default weight processing applies), which
      needs the Hugging Face hub; offline that fails with a ``ModelLoadError`` naming the embedded
      default.

    ``device`` and ``dtype`` apply on every route. ``default_prepend_bos=None`` keeps each route's
    default (local checkpoints: tokenise as the checkpoint's own tokenizer does).
    """
    name_or_path = check_name_or_path(name_or_path)
    dev = check_device(device)
    dtype = check_dtype(dtype)
    default_prepend_bos = check_prepend_bos(default_prepend_bos)
    is_alias = isinstance(name_or_path, str) and name_or_path in EMBEDDED_ALIASES
    path = None if is_alias else _local_path(name_or_path)
    if (is_alias or path is not None) and from_pretrained_kwargs:
        raise TypeError(
            f"keyword argument(s) {', '.join(sorted(from_pretrained_kwargs))} go to HookedTransformer.from_pretrained, "
            f"which only hub model names use; {name_or_path!r} is "
            f"{'the embedded model' if is_alias else 'a local checkpoint'}"
        )
    if is_alias:
        return load_embedded(dev, dtype, default_prepend_bos=default_prepend_bos)
    if path is not None:
        return load_checkpoint(path, device=dev, dtype=dtype, default_prepend_bos=default_prepend_bos)
    # every os.PathLike is a local path above, so what is left is a model name (a str)
    return _from_pretrained(str(name_or_path), dev, dtype, default_prepend_bos, from_pretrained_kwargs)
