"""Local checkpoints: a Hugging Face model directory or a GGUF file, loaded as a ``HookedTransformer``
through TransformerLens' own config and weight conversion.

* A **directory** with ``config.json`` and ``*.safetensors`` weights is read by
  ``transformers.AutoModelForCausalLM`` (``local_files_only``), its tokenizer by ``AutoTokenizer``
  when the directory has one.
* A **GGUF file** is dequantised by ``transformers`` (``from_pretrained(dir, gguf_file=name)``, which
  uses the ``gguf`` package), tokenizer included. Dequantising is slow, so the converted weights are
  cached as safetensors (through ``workbench.artifacts``) with the TransformerLens config and the
  tokenizer, keyed by the file's path, size and modification time.

Both then go the same way: TransformerLens maps the Hugging Face config to a
``HookedTransformerConfig`` (``workbench.models.architectures`` says how, per architecture) and
converts the weights (``transformer_lens.loading.get_pretrained_state_dict`` with ``hf_model=``).
The weights are loaded unprocessed (no LayerNorm folding or centring: ``from_pretrained_no_processing``
semantics), so the model computes exactly what the Hugging Face model computes. Unless
``verify=False``, the conversion is checked on the spot: log-probabilities of the
``HookedTransformer`` and the Hugging Face model on a fixed random token sequence must agree.
"""

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Optional, Union

import torch
from transformer_lens import HookedTransformer
from transformer_lens import loading_from_pretrained as tl_loading

from ..paths import cache_dir
from .architectures import Architecture, architecture_of
from .base import (
    ModelLoadError,
    build_model,
    check_device,
    check_dtype,
    check_prepend_bos,
    finish_config,
    tokenizer_prepends_bos,
)

EXPECTED = "a Hugging Face model directory (config.json + *.safetensors weights) or a .gguf file"
CONVERTED_KIND = "converted_model"
# Version 2: the TransformerLens config is stored with the weights (it used to be hand-built at load).
CACHE_FORMAT = 2
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# convert_hf_model_config matches these substrings of the name it is given before it reads the
# config (e.g. "llama" selects a name-keyed branch that never reads config.json), so the directory
# it reads from must not contain them.
_TL_NAME_TRIGGERS = ("llama", "gemma", "wav2vec2", "santacoder")
# Fields of a template's hard-coded config that are structure, not size (kept from the template).
_TEMPLATE_STRUCTURE = frozenset(
    {
        "final_rms",
        "gated_mlp",
        "normalization_type",
        "original_architecture",
        "positional_embedding_type",
        "quantization_method",
        "tokenizer_name",
        "use_attn_scale",
        "use_local_attn",
        "use_normalization_before_and_after",
        "use_qk_norm",
    }
)
# Parity check at conversion: log p on this many random tokens, and the largest |Δ log p| allowed.
_VERIFY_TOKENS = 24
_VERIFY_TOL = {torch.float32: 1e-3, torch.float64: 1e-6}


# --------------------------------------------------------------------------- finding the model


def resolve(path: Union[str, os.PathLike]) -> tuple:
    """``("hf", directory)`` or ``("gguf", file)`` for a path, or an error saying what was expected."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory; expected {EXPECTED}")
    if p.is_file():
        if p.suffix.lower() == ".gguf":
            return "gguf", p
        hint = " (pass the directory that holds it)" if p.name == "config.json" else ""
        raise ModelLoadError(f"{p} is a file but not a .gguf file{hint}; expected {EXPECTED}")
    names = sorted(q.name for q in p.iterdir())
    if "config.json" in names:
        if any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names):
            return "hf", p
        pickles = [n for n in names if n.endswith((".bin", ".pt", ".pth"))]
        extra = (
            f"; it has {', '.join(pickles)}: pickled weights are not loaded (convert them to safetensors)"
            if pickles
            else ""
        )
        raise ModelLoadError(f"{p} has config.json but no *.safetensors weights{extra}; expected {EXPECTED}")
    ggufs = [n for n in names if n.lower().endswith(".gguf")]
    if len(ggufs) == 1:
        return "gguf", p / ggufs[0]
    if ggufs:
        raise ModelLoadError(f"{p} holds {len(ggufs)} .gguf files ({', '.join(ggufs)}); pass the one to load")
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") if names else "nothing"
    raise ModelLoadError(f"{p} holds no model (found: {shown}); expected {EXPECTED}")


# --------------------------------------------------------------------------- config conversion


@contextmanager
def _neutral_config_dir(hf_config: Any, arch: Architecture):
    """A temporary directory holding only ``config.json`` (the loaded config with its architecture
    named and its quantization note dropped: GGUF weights arrive dequantised, and TransformerLens
    checks the loaded weights themselves for packed storage), whose path contains none of the
    substrings ``convert_hf_model_config`` dispatches on by name. Removed on exit."""
    doc = hf_config.to_dict()
    doc["architectures"] = [arch.name]
    doc.pop("quantization_config", None)
    for tl_name, hf_name in arch.config_aliases:
        if tl_name not in doc and hf_name in doc:
            doc[tl_name] = doc[hf_name]
    for _ in range(20):
        tmp = tempfile.mkdtemp(prefix="workbench-tl-config-")
        if not any(t in tmp.lower() for t in _TL_NAME_TRIGGERS):
            break
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        raise ModelLoadError(
            f"the temporary directory {tempfile.gettempdir()} contains one of {_TL_NAME_TRIGGERS}, which "
            "TransformerLens' config conversion reads as a model name; set TMPDIR to another directory"
        )
    try:
        Path(tmp, "config.json").write_text(json.dumps(doc, indent=2, default=str))
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _template_config(hf_config: Any, arch: Architecture, where: str) -> dict:
    if arch.template is None or arch.geometry is None:
        raise ValueError(f"architecture {arch.name!r} has no template config; TransformerLens reads its config.json")
    cfg = tl_loading.convert_hf_model_config(arch.template)
    geometry = arch.geometry(hf_config)
    left = sorted(set(cfg) - set(geometry) - _TEMPLATE_STRUCTURE)
    if left:  # a TransformerLens release hard-codes a field the geometry does not replace
        raise ModelLoadError(
            f"{where}: TransformerLens' {arch.template} config has field(s) {left} that workbench does not "
            f"read from the checkpoint's config; refusing to copy the template's values for {arch.name}"
        )
    cfg.update(geometry)
    return cfg


def convert(hf_model, arch: Architecture, where: str, dtype: torch.dtype) -> tuple:
    """TransformerLens' config dict and state dict for a loaded Hugging Face model."""
    try:
        return _convert(hf_model, arch, where, dtype)
    except NotImplementedError as err:  # e.g. TransformerLens refusing packed (quantised) weights
        raise ModelLoadError(f"{where}: TransformerLens cannot convert this {arch.name} checkpoint: {err}") from err


def _convert(hf_model, arch: Architecture, where: str, dtype: torch.dtype) -> tuple:
    with warnings.catch_warnings(), ExitStack() as stack:
        warnings.simplefilter("ignore")
        if arch.template is None:  # TransformerLens reads the config from a directory
            source = stack.enter_context(_neutral_config_dir(hf_model.config, arch))
            cfg_dict = tl_loading.convert_hf_model_config(source)
        else:  # TransformerLens knows this architecture by official name only
            source = arch.template
            cfg_dict = _template_config(hf_model.config, arch, where)
        cfg = finish_config(
            cfg_dict,
            model_name=arch.name,
            device=hf_model.device,
            dtype=dtype,
            default_prepend_bos=False,
            tokenizer_name=None,
        )
        state = tl_loading.get_pretrained_state_dict(source, cfg, hf_model=hf_model, dtype=dtype)
    if cfg_dict.get("original_architecture") != arch.name:
        raise ModelLoadError(
            f"{where}: TransformerLens converted the config as {cfg_dict.get('original_architecture')!r}, "
            f"not {arch.name!r}"
        )
    cfg_dict = {k: v for k, v in cfg_dict.items() if k not in ("dtype", "tokenizer_name")}
    state = {k: v.detach() for k, v in state.items()}
    return cfg_dict, state


def _verify(model: HookedTransformer, hf_model, where: str) -> float:
    """Largest |Δ log p| between the converted model and Hugging Face on fixed random tokens."""
    tol = _VERIFY_TOL.get(model.cfg.dtype)
    if tol is None:  # half precision: the two implementations round differently; nothing to hold them to
        return float("nan")
    n = min(_VERIFY_TOKENS, model.cfg.n_ctx)
    ids = torch.randint(0, model.cfg.d_vocab, (1, n), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = torch.log_softmax(hf_model(ids.to(hf_model.device)).logits.to(torch.float64).cpu(), -1)
        ours = torch.log_softmax(model(ids.to(model.cfg.device)).to(torch.float64).cpu(), -1)
    worst = (ref - ours).abs().max().item()
    if not worst <= tol:
        raise ModelLoadError(
            f"{where}: the HookedTransformer that TransformerLens converted differs from the Hugging Face model "
            f"(max |Δ log p| = {worst:.3g} > {tol:g} on {n} random tokens); the checkpoint uses a setting "
            "the conversion does not implement"
        )
    return worst


def _model_from(
    cfg_dict: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    tokenizer,
    *,
    model_name: str,
    tokenizer_name: Optional[str],
    device: torch.device,
    dtype: torch.dtype,
    default_prepend_bos: Optional[bool],
) -> HookedTransformer:
    if default_prepend_bos is None:  # tokenise as the checkpoint's own tokenizer does
        default_prepend_bos = tokenizer_prepends_bos(tokenizer) if tokenizer is not None else False
    cfg = finish_config(
        cfg_dict,
        model_name=model_name,
        device=device,
        dtype=dtype,
        default_prepend_bos=default_prepend_bos,
        tokenizer_name=tokenizer_name if tokenizer is not None else None,
    )
    return build_model(cfg, state, tokenizer, device)


# --------------------------------------------------------------------------- Hugging Face directories


def _load_directory(
    directory: Path, *, device: torch.device, dtype: torch.dtype, default_prepend_bos: Optional[bool], verify: bool
) -> HookedTransformer:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    where = str(directory)
    try:
        hf_config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"{directory}/config.json cannot be read by transformers: {err}") from err
    arch = architecture_of(hf_config, where)
    try:
        hf = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{directory}: transformers could not load the weights: {err}") from err
    hf.eval()
    tokenizer = None
    if any((directory / f).exists() for f in _TOKENIZER_FILES):
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{directory}: the tokenizer files cannot be loaded: {err}") from err
    cfg_dict, state = convert(hf, arch, where, dtype)
    home = hf.device  # built and checked where the Hugging Face model is, then moved
    model = _model_from(
        cfg_dict,
        state,
        tokenizer,
        model_name=directory.resolve().name,
        tokenizer_name=str(directory.resolve()),
        device=home,
        dtype=dtype,
        default_prepend_bos=default_prepend_bos,
    )
    if verify:
        _verify(model, hf, where)
    del hf, state
    if device != home:
        model.to(str(device), print_details=False)
    return model


# --------------------------------------------------------------------------- GGUF files


def _gguf_key(file: Path) -> dict:
    st = file.stat()
    return {"source": str(file.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def gguf_cache_path(file: Union[str, os.PathLike], slug: Optional[str] = None) -> Path:
    """Where the converted weights of a GGUF file are cached (``cache_dir()`` / slug / v<format>)."""
    file = Path(file).expanduser()
    if slug is None:
        digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
        slug = f"gguf-{file.stem.lower()}-{digest}"
    return cache_dir() / slug / f"v{CACHE_FORMAT}"


def load_hf_gguf(file: Union[str, os.PathLike], dtype: torch.dtype = torch.float32) -> tuple:
    """A GGUF file as a Hugging Face model + tokenizer, dequantised by ``transformers``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    file = Path(file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
        hf = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=dtype)
    hf.eval()
    return hf, tokenizer


def _convert_gguf(file: Path, target: Path, verify: bool) -> tuple:
    """Dequantise (float32), convert with TransformerLens, check, and write the cache at ``target``.
    Returns the TransformerLens config dict and the float32 state dict."""
    from transformers import AutoConfig

    from ..artifacts import save_tensors

    where = str(file)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf_config = AutoConfig.from_pretrained(file.parent, gguf_file=file.name)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelLoadError(f"{file}: transformers cannot read this GGUF file: {err}") from err
    arch = architecture_of(hf_config, where)
    hf, tokenizer = load_hf_gguf(file, torch.float32)
    cfg_dict, state = convert(hf, arch, where, torch.float32)
    if verify:
        model = _model_from(
            cfg_dict,
            state,
            tokenizer,
            model_name=file.stem,
            tokenizer_name=None,
            device=hf.device,
            dtype=torch.float32,
            default_prepend_bos=False,
        )
        _verify(model, hf, where)
        del model
    try:
        json.dumps(cfg_dict)
    except TypeError as err:
        raise ModelLoadError(f"{where}: the TransformerLens config cannot be stored as JSON ({err})") from err
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    tokenizer.save_pretrained(tmp / "tokenizer")
    meta = {
        **_gguf_key(file),
        "architecture": arch.name,
        "tl_config": cfg_dict,
        "converter": "transformer_lens.loading_from_pretrained.get_pretrained_state_dict",
        "dequantised_by": "transformers.AutoModelForCausalLM.from_pretrained(gguf_file=...)",
    }
    state = {k: v.to(torch.float32) for k, v in state.items()}
    save_tensors(tmp / "model", state, meta, kind=CONVERTED_KIND, version=CACHE_FORMAT)
    if target.exists():  # a stale or broken conversion (a valid one would have been used)
        shutil.rmtree(target, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:  # another process put its conversion there meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if _cached(target, file) is None:
            raise
    return cfg_dict, state


def _cached(target: Path, file: Path) -> Optional[dict]:
    """The cache's metadata when it holds a conversion of this very file, else None."""
    from ..artifacts import ArtifactError, load_json

    sidecar = target / "model.json"
    if not sidecar.is_file() or not (target / "tokenizer").is_dir():
        return None
    try:
        meta = load_json(sidecar, kind=CONVERTED_KIND, versions=(CACHE_FORMAT,), required=("tl_config", "source"))
    except ArtifactError:
        return None
    key = _gguf_key(file)
    return meta if all(meta.get(k) == v for k, v in key.items()) else None


def load_gguf(
    file: Union[str, os.PathLike],
    *,
    device: torch.device,
    dtype: torch.dtype,
    default_prepend_bos: Optional[bool] = None,
    verify: bool = True,
    cache_slug: Optional[str] = None,
    model_name: Optional[str] = None,
) -> HookedTransformer:
    """A GGUF file as a ``HookedTransformer`` (converted once, then loaded from the safetensors cache)."""
    from transformers import AutoTokenizer

    from ..artifacts import load_tensors

    file = Path(file).expanduser()
    target = gguf_cache_path(file, cache_slug)
    if _cached(target, file) is None:
        cfg_dict, state = _convert_gguf(file, target, verify)
    else:
        state, meta = load_tensors(target / "model", kind=CONVERTED_KIND, versions=(CACHE_FORMAT,))
        cfg_dict = meta["tl_config"]
    tokenizer = AutoTokenizer.from_pretrained(target / "tokenizer")  # the saved copy, first load or not
    return _model_from(
        cfg_dict,
        state,
        tokenizer,
        model_name=model_name or file.stem,
        tokenizer_name=str(target / "tokenizer"),
        device=device,
        dtype=dtype,
        default_prepend_bos=default_prepend_bos,
    )


# --------------------------------------------------------------------------- public entry


def load_checkpoint(
    path: Union[str, os.PathLike],
    *,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
    default_prepend_bos: Optional[bool] = None,
    verify: bool = True,
) -> HookedTransformer:
    """Load a local checkpoint as a ``HookedTransformer``: a Hugging Face model directory
    (``config.json`` + ``*.safetensors``) or a ``.gguf`` file (or a directory holding exactly one).

    ``default_prepend_bos=None`` tokenises as the checkpoint's own tokenizer does (BOS only if it adds
    one). ``verify`` checks log p against the Hugging Face model on random tokens at conversion
    (float32/float64 only). GGUF conversions are cached under ``workbench.paths.cache_dir()``."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"path must be a non-empty str or os.PathLike, got {path!r} ({type(path).__name__})")
    dev = check_device(device)
    dtype = check_dtype(dtype)
    default_prepend_bos = check_prepend_bos(default_prepend_bos)
    if not isinstance(verify, bool):
        raise TypeError(f"verify must be True or False, got {verify!r}")
    kind, where = resolve(path)
    if kind == "gguf":
        return load_gguf(where, device=dev, dtype=dtype, default_prepend_bos=default_prepend_bos, verify=verify)
    return _load_directory(where, device=dev, dtype=dtype, default_prepend_bos=default_prepend_bos, verify=verify)
