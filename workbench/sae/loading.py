"""Loading sparse autoencoders: local ``saes/<name>/`` folders (offline) or SAELens releases.

A local SAE is a folder in SAELens' disk format (``cfg.json`` + ``sae_weights.safetensors``), as
written by :func:`workbench.sae.training.save_sae`; it loads with ``SAE.load_from_disk``. A pretrained SAE is a
SAELens *release* and *SAE id* (``SAE.from_pretrained(release, sae_id)``), which needs the Hugging
Face hub. Offline (``HF_HUB_OFFLINE=1``, ``WORKBENCH_OFFLINE=1``, or the hub unreachable) that path
fails with an error naming the local SAEs that would work instead.

Every loaded SAE is an ordinary SAELens ``SAE``; ``sae_site(sae)`` turns its hook name into a
:class:`workbench.sites.Site` and checks it against a model.
"""

import os
from pathlib import Path
from typing import Optional, Union

from .. import paths
from ..sites import Site

SAES_ENV = "WORKBENCH_SAES"
_OFFLINE_ENVS = ("WORKBENCH_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class SAELoadError(RuntimeError):
    """An SAE could not be loaded; the message says why and what would work."""


def saes_dir() -> Path:
    """Where local SAEs live: ``$WORKBENCH_SAES``, else the package data ``workbench.saes``."""
    return paths.saes_dir()


def list_local_saes(directory: Union[str, Path, None] = None) -> list[str]:
    """Names of the SAE folders (those holding a ``cfg.json``) under ``directory`` (default ``saes_dir()``)."""
    root = Path(directory) if directory is not None else saes_dir()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/cfg.json"))


def _offline() -> bool:
    for env in _OFFLINE_ENVS:
        if os.environ.get(env, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def _local_path(name: str) -> Optional[Path]:
    direct = Path(name).expanduser()
    if (direct / "cfg.json").is_file():
        return direct
    candidate = saes_dir() / name
    if (candidate / "cfg.json").is_file():
        return candidate
    return None


def load_sae(
    name: Optional[str] = None,
    *,
    release: Optional[str] = None,
    sae_id: Optional[str] = None,
    device: str = "cpu",
    dtype: str = "float32",
):
    """Load an SAE as a SAELens ``SAE`` (eval mode, no gradients).

    ``load_sae("smollm2-resid_post-15-topk4096")`` loads ``saes/<name>/`` (or a folder path) with
    ``SAE.load_from_disk``; this works offline. ``load_sae(release="gpt2-small-res-jb",
    sae_id="blocks.8.hook_resid_pre")`` goes through ``SAE.from_pretrained(release, sae_id)`` and
    needs the Hugging Face hub; offline it raises :class:`SAELoadError`."""
    if (name is None) == (release is None):
        raise ValueError("pass either a local SAE name (load_sae('name')) or release= and sae_id=, not both or neither")
    if dtype not in ("float32", "float64", "float16", "bfloat16"):
        raise ValueError(f"dtype must be float32, float64, float16 or bfloat16, got {dtype!r}")
    from sae_lens import SAE

    if name is not None:
        if not isinstance(name, (str, Path)) or not str(name):
            raise ValueError(f"SAE name must be a non-empty string, got {name!r}")
        path = _local_path(str(name))
        if path is None:
            found = list_local_saes()
            listing = (
                ", ".join(found) if found else f"none (looked in {saes_dir()}; train some with `workbench sae train`)"
            )
            raise SAELoadError(
                f"no local SAE named {str(name)!r}: neither {Path(str(name))} nor {saes_dir() / str(name)} holds "
                f"a cfg.json. Local SAEs: {listing}."
            )
        sae = SAE.load_from_disk(path, device=device, dtype=dtype)
    else:
        if not isinstance(release, str) or not release or not isinstance(sae_id, str) or not sae_id:
            raise ValueError(
                "a pretrained SAE needs a release and an sae_id (non-empty strings), "
                f"got release={release!r}, sae_id={sae_id!r}"
            )
        local = ", ".join(list_local_saes()) or "none"
        if _offline():
            raise SAELoadError(
                f"cannot load SAELens release {release!r} / {sae_id!r}: offline mode is on "
                f"({', '.join(e for e in _OFFLINE_ENVS if os.environ.get(e))}), and SAE.from_pretrained needs the "
                f"Hugging Face hub. Offline, load a local SAE by name instead; local SAEs: {local}."
            )
        try:
            sae = SAE.from_pretrained(release, sae_id, device=device, dtype=dtype)
        except ValueError:
            raise  # SAELens' own message for an unknown release / id
        except Exception as err:  # hub unreachable, file missing from the cache, HTTP errors
            raise SAELoadError(
                f"SAE.from_pretrained({release!r}, {sae_id!r}) failed ({err.__class__.__name__}: "
                f"{(str(err).splitlines() or [''])[0][:300]}). This path needs the Hugging Face hub (or a warm HF "
                f"cache). Offline, load a local SAE by name instead; local SAEs: {local}."
            ) from err
    sae.eval()
    sae.requires_grad_(False)
    return sae


def sae_site(sae, model=None) -> Site:
    """The model site an SAE reads and writes (from ``sae.cfg.metadata.hook_name``), checked
    against ``model`` (layer in range, ``d_in == d_model``) when one is given."""
    hook = getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
    if not hook:
        raise ValueError(
            "this SAE's config has no metadata.hook_name, so its site is unknown; set sae.cfg.metadata.hook_name"
        )
    site = Site.parse(hook, model)
    if model is not None and site.stream.startswith("resid") and sae.cfg.d_in != model.cfg.d_model:
        raise ValueError(f"SAE d_in={sae.cfg.d_in} does not match the model's d_model={model.cfg.d_model} at {site}")
    return site


def sae_label(sae) -> str:
    """A short human label: ``resid_post.15 ×4096``."""
    try:
        site = sae_site(sae).short
    except ValueError:
        site = "?"
    return f"{site} ×{sae.cfg.d_sae}"
