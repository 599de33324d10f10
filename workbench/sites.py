"""Sites: named places in a HookedTransformer where activations are read (probed) or edited (steered).

A ``Site`` is a layer plus a stream. ``Site(12, "resid_post").hook_name`` is TransformerLens'
``blocks.12.hook_resid_post``. Streams inside a block's sub-modules use a dotted stream name:
``Site(3, "attn.z")`` is ``blocks.3.attn.hook_z``; model-level hooks have no layer:
``Site(None, "embed")`` is ``hook_embed``.
"""

import difflib
import re
from dataclasses import dataclass
from typing import Optional, Union

BLOCK_STREAMS = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
# Streams whose activations carry the query position on dim 2 rather than dim 1.
_POS_DIM_2 = ("attn.attn_scores", "attn.pattern")

# Streams that exist only under some configs: (stream, config field, value it needs, why).
_CONFIG_STREAMS = (
    ("resid_mid", "parallel_attn_mlp", False, "parallel blocks add attention and MLP to resid_pre at once"),
    ("resid_mid", "attn_only", False, "attention-only blocks have no MLP"),
    ("mlp_in", "use_hook_mlp_in", True, "set it to True to get hook_mlp_in"),
    ("attn_in", "use_attn_in", True, "set it to True to get hook_attn_in"),
    ("attn.result", "use_attn_result", True, "set it to True to get per-head results"),
    ("q_input", "use_split_qkv_input", True, "set it to True to get separate q/k/v inputs"),
    ("k_input", "use_split_qkv_input", True, "set it to True to get separate q/k/v inputs"),
    ("v_input", "use_split_qkv_input", True, "set it to True to get separate q/k/v inputs"),
)

_TL_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_SHORT = re.compile(r"^(.+)\.(\d+)$")


def _stream_from_suffix(suffix: str) -> str:
    """``hook_resid_post`` -> ``resid_post``; ``attn.hook_z`` -> ``attn.z``. Hooks nested inside
    other hooks (SAELens' ``hook_resid_post.hook_sae_acts_post``) keep their exact suffix."""
    parts = suffix.split(".")
    if any(p.startswith("hook_") for p in parts[:-1]):
        return suffix
    parts[-1] = parts[-1].removeprefix("hook_")
    return ".".join(parts)


def _suffix_from_stream(stream: str) -> str:
    parts = stream.split(".")
    if any(p.startswith("hook_") for p in parts):
        return stream
    parts[-1] = "hook_" + parts[-1]
    return ".".join(parts)


@dataclass(frozen=True, order=True)
class Site:
    """A place in the model: ``layer`` (None for model-level hooks such as ``embed``) and ``stream``."""

    layer: Optional[int]
    stream: str

    def __post_init__(self) -> None:
        if self.layer is not None and (
            not isinstance(self.layer, int) or isinstance(self.layer, bool) or self.layer < 0
        ):
            raise ValueError(f"Site layer must be a non-negative int or None, got {self.layer!r}")
        if (
            not isinstance(self.stream, str)
            or not self.stream
            or (self.stream.startswith("hook_") and "." not in self.stream)
        ):
            raise ValueError(
                f"Site stream must be a stream name such as 'resid_post' or 'attn.z' (without 'hook_'), "
                f"got {self.stream!r}"
            )

    @property
    def hook_name(self) -> str:
        """TransformerLens' hook name, e.g. ``blocks.12.hook_resid_post``."""
        suffix = _suffix_from_stream(self.stream)
        return suffix if self.layer is None else f"blocks.{self.layer}.{suffix}"

    @property
    def short(self) -> str:
        """Short form, e.g. ``resid_post.12`` (or ``embed`` for model-level hooks)."""
        return self.stream if self.layer is None else f"{self.stream}.{self.layer}"

    @property
    def pos_dim(self) -> int:
        """Which dimension of this site's activation indexes token positions."""
        return 2 if self.stream in _POS_DIM_2 else 1

    def __str__(self) -> str:
        return self.short

    @classmethod
    def parse(cls, text: Union[str, "Site"], model=None) -> "Site":
        """Parse ``blocks.12.hook_resid_post``, ``resid_post.12`` or ``hook_embed``/``embed``.

        With ``model`` the site is also checked to exist; an unknown site raises a ``KeyError``
        listing close matches."""
        if isinstance(text, Site):
            site = text
        elif not isinstance(text, str) or not text:
            raise TypeError(f"a site is a Site or a string such as 'resid_post.12', got {text!r}")
        else:
            m = _TL_BLOCK.match(text)
            if m:
                site = cls(int(m.group(1)), _stream_from_suffix(m.group(2)))
            elif text.startswith("hook_") or ".hook_" in text:
                site = cls(None, _stream_from_suffix(text))
            else:
                m = _SHORT.match(text)
                site = cls(int(m.group(2)), m.group(1)) if m else cls(None, text)
        if model is not None:
            site.check(model)
        return site

    def check(self, model) -> "Site":
        """Raise ``KeyError`` naming close matches if this site is not a hook of ``model``."""
        hooks = model.hook_dict
        # Some hook points exist on every model but only fire under a config flag: refuse them up front.
        for stream, field, needed, why in _CONFIG_STREAMS:
            if self.stream == stream and bool(getattr(model.cfg, field, False)) != needed:
                value = getattr(model.cfg, field, None)
                raise KeyError(f"site '{self.short}' is not computed by this model: cfg.{field}={value!r} ({why})")
        # A SAELens HookedSAETransformer replaces an attached hook point by the SAE module itself.
        if self.hook_name in hooks or self.hook_name in getattr(model, "mod_dict", {}):
            return self
        n_layers = model.cfg.n_layers
        if self.layer is not None and self.layer >= n_layers:
            raise KeyError(
                f"site '{self.short}' asks for layer {self.layer}, but the model has layers 0..{n_layers - 1}"
            )
        names = list(hooks)
        shorts = {Site.parse(n).short: n for n in names}
        close = difflib.get_close_matches(self.hook_name, names, n=4, cutoff=0.6)
        close += [
            s for s in difflib.get_close_matches(self.short, list(shorts), n=4, cutoff=0.6) if shorts[s] not in close
        ]
        hint = ", ".join(close) if close else "none; streams in a block: " + ", ".join(BLOCK_STREAMS)
        raise KeyError(f"unknown site '{self.short}' (hook '{self.hook_name}'); close matches: {hint}")


SiteLike = Union[Site, str]


def as_site(site: SiteLike, model=None) -> Site:
    return Site.parse(site, model)


def resid(layer: int, stream: str = "resid_post") -> Site:
    """Shorthand: ``resid(12)`` is ``Site(12, "resid_post")``."""
    return Site(layer, stream)
