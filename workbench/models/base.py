"""What every loading route shares: the error type, argument checks, and the last step that turns a
TransformerLens config + converted state dict into a ready ``HookedTransformer``."""

import os
import warnings
from collections.abc import Mapping
from typing import Any, Optional, Union

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

# The dtypes a HookedTransformer can run in (TransformerLens' own list: DTYPE_FROM_STRING).
FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what would work."""


def check_dtype(dtype: Any) -> torch.dtype:
    """``dtype`` must be one of ``FLOAT_DTYPES`` (a ``torch.dtype``, not a string)."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32, got {dtype!r} ({type(dtype).__name__})")
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(map(str, FLOAT_DTYPES))}; got {dtype}")
    return dtype


def check_device(device: Any) -> torch.device:
    """``device`` is a ``torch.device`` or a device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``)
    that exists on this machine."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {device!r} ({type(device).__name__})")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device {device!r} is not a torch device string ({err}); use e.g. 'cpu' or 'cuda'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} needs CUDA, but torch.cuda.is_available() is False here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} needs MPS, but torch.backends.mps.is_available() is False here")
    return dev


def check_prepend_bos(value: Any) -> Optional[bool]:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"default_prepend_bos must be True, False or None, got {value!r} ({type(value).__name__})")
    return value


def check_name_or_path(value: Any) -> Union[str, os.PathLike]:
    if isinstance(value, os.PathLike):
        if not os.fspath(value):
            raise ValueError("name_or_path must not be an empty path")
        return value
    if not isinstance(value, str):
        raise TypeError(
            f"name_or_path must be a model name (str) or a path (str or os.PathLike), got {value!r} "
            f"({type(value).__name__})"
        )
    if not value.strip():
        raise ValueError(f"name_or_path must be a non-empty model name or path, got {value!r}")
    return value


def tokenizer_prepends_bos(tokenizer) -> bool:
    """Whether the tokenizer, as saved, starts an encoding with its BOS token (Hugging Face's own
    tokenisation, which the checkpoint was trained with)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return len(ids) > 0 and ids[0] == bos


def finish_config(
    cfg_dict: Mapping[str, Any],
    *,
    model_name: str,
    device: torch.device,
    dtype: torch.dtype,
    default_prepend_bos: bool,
    tokenizer_name: Optional[str],
) -> HookedTransformerConfig:
    """The processing ``transformer_lens.loading.get_pretrained_model_config`` applies to the dict that
    ``convert_hf_model_config`` returns (name, no weight init, device, dtype, one device, no checkpoint
    index, BOS default), without folding LayerNorm: workbench works on unprocessed weights."""
    cfg = {k: v for k, v in cfg_dict.items() if k != "dtype"}
    cfg.update(
        model_name=model_name,
        init_weights=False,
        device=str(device),
        dtype=dtype,
        n_devices=1,
        from_checkpoint=False,
        default_prepend_bos=default_prepend_bos,
        tokenizer_name=tokenizer_name,
    )
    return HookedTransformerConfig.from_dict(cfg)


def build_model(
    cfg: HookedTransformerConfig, state: Mapping[str, torch.Tensor], tokenizer, device: torch.device
) -> HookedTransformer:
    """A ``HookedTransformer`` from a config and a TransformerLens-format state dict, loaded without
    weight processing (no LayerNorm folding, no centring), in eval mode with gradients off."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(
            cfg, tokenizer=tokenizer, move_to_device=False, default_padding_side="right" if tokenizer else None
        )
    # TransformerLens' load_and_process_state_dict loads key by key with strict=False (slow, and it
    # would drop unknown keys silently); with no processing requested it only fills missing keys
    # (refusing missing weight matrices) and loads. Done here in one strict load_state_dict.
    # An unknown all-zero tensor (a converter writing a bias the block does not have) changes nothing.
    extra = set(state) - set(model.state_dict())
    unexpected = sorted(k for k in extra if bool(state[k].any()))
    if unexpected:
        raise ModelLoadError(
            f"the converted weights hold {len(unexpected)} tensor(s) the {cfg.original_architecture} "
            f"HookedTransformer has no place for: {', '.join(unexpected[:5])}"
        )
    state = model.fill_missing_keys({k: v for k, v in state.items() if k not in extra})
    model.load_state_dict(state, strict=True)
    model.to(str(device), print_details=False)
    model.eval()
    model.requires_grad_(False)
    return model
