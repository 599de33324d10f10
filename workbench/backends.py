"""Backends: what workbench needs from a model, for both of TransformerLens' model types.

TransformerLens 3.x has two: ``HookedTransformer`` (its own re-implementation of each architecture)
and ``transformer_lens.model_bridge.TransformerBridge`` (hook points wrapped around the Hugging Face
modules, which run the forward pass themselves; TransformerLens 4 keeps only this one). workbench
reads and edits activations by TransformerLens hook names (``blocks.L.hook_resid_post``), so a
bridge must be in its compatibility mode (``bridge.enable_compatibility_mode()``), which aliases the
bridge's own names (``blocks.L.hook_out``) to those.

``as_backend(model)`` returns the one object the registry, the readout, patching and generation ask:

* ``hook_module(name)``: the module whose forward hook sees (and may replace) the activation of a
  TransformerLens hook name, or None; ``add_hook(module, hook)`` registers the hook so that it sees
  the activation in TransformerLens' layout (a bridge converts some, e.g. ``attn.hook_z``);
* ``forward(tokens, attention_mask=, stop_at_layer=, return_type=)``: HookedTransformer's contract,
  where ``stop_at_layer=n_layers`` returns the residual after the last block (before the final norm);
* ``decoder(batch, max_positions)``: the incremental decoder ``generate`` steps through;
* ``restart_blocker`` / ``decoder_blocker`` / ``rewrite_blocker``: why a fast path that re-implements
  part of the forward pass does not apply (None: it does), and ``paths()``: one line per fast path
  saying which path runs and why (``HookRegistry.describe()`` carries it).

For a bridge, Hugging Face's ``forward`` owns the loop over layers, so two fast paths do not apply:
workbench's fused KV-cached decoder (it runs HookedTransformer blocks) — generation steps through the
bridge's forward with Hugging Face's own KV cache instead — and ``start_at_layer`` restarts
(``TransformerBridge.forward`` refuses them) — activation patching runs every patch from the
embedding (schedule ``"full"``); KV reuse in patching needs HookedTransformer blocks too
(``patching.reuse.kv_reuse_blocker`` names the block type). RelP's rewritten modules are refused by
name (plain-gradient AtP runs through registry taps and applies); the logit lens reads a text in one
plain pass instead of chunks through TransformerLens' KV cache. The early stop of probe-only runs
applies to both (the bridge implements ``stop_at_layer``).
"""

import contextlib
import inspect
from collections.abc import Callable
from typing import ClassVar, Optional

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from transformer_lens import HookedTransformer
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.exceptions import StopAtLayerException
from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

SUPPORTED = (
    "transformer_lens.HookedTransformer (and subclasses such as SAELens' HookedSAETransformer)",
    "transformer_lens.model_bridge.TransformerBridge (after bridge.enable_compatibility_mode())",
)


class Backend:
    """The interface; one subclass per model type, chosen by ``as_backend``."""

    name: ClassVar[str]
    # Why a fast path does not apply to this model type (None: it applies).
    decoder_blocker: ClassVar[Optional[str]] = None
    restart_blocker: ClassVar[Optional[str]] = None
    rewrite_blocker: ClassVar[Optional[str]] = None  # RelP's rewritten forward of HookedTransformer's modules

    def __init__(self, model) -> None:
        self.model = model

    @classmethod
    def accepts(cls, model) -> bool:
        raise NotImplementedError

    @property
    def cfg(self):
        return self.model.cfg

    @property
    def tokenizer(self):
        return getattr(self.model, "tokenizer", None)

    def hook_module(self, name: str) -> Optional[nn.Module]:
        """The module whose forward hook sees the activation named ``name`` (TransformerLens' name), or None."""
        raise NotImplementedError

    def add_hook(self, module: nn.Module, hook: Callable) -> RemovableHandle:
        """``module.register_forward_hook(hook)``, with ``hook`` seeing the activation in TransformerLens'
        layout: a bridge's hook point may carry a ``hook_conversion`` (e.g. ``attn.hook_z`` is
        ``[batch, pos, d_model]`` inside Hugging Face's attention and ``[batch, pos, head, d_head]`` in
        TransformerLens), which is applied to the activation and reverted on a returned replacement,
        exactly as ``HookPoint.add_hook`` does."""
        conversion = getattr(module, "hook_conversion", None)
        if conversion is None:
            return module.register_forward_hook(hook)

        def converted(mod, inputs, output):
            if not isinstance(output, Tensor):
                return None
            new = hook(mod, inputs, conversion.convert(output))
            return None if new is None else conversion.revert(new)

        return module.register_forward_hook(converted)

    def forward(
        self,
        tokens: Int[Tensor, "batch pos"],
        *,
        attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
        stop_at_layer: Optional[int] = None,
        return_type: Optional[str] = "logits",
    ) -> Optional[Tensor]:
        """``HookedTransformer.forward``'s contract: logits, or (``stop_at_layer``) the residual entering
        block ``stop_at_layer`` (``n_layers``: after the last block, before the final norm)."""
        raise NotImplementedError

    def decoder(self, batch_size: int, max_positions: int):
        """An incremental decoder: ``step(tokens, attention_mask)`` feeds a chunk (the prompt, then one
        token per step; ``attention_mask`` covers the chunk) and returns the last column's logits."""
        raise NotImplementedError

    def paths(self) -> dict[str, str]:
        """Which path each fast path takes on this model, and why."""
        raise NotImplementedError


class HookedBackend(Backend):
    """A ``HookedTransformer``: every fast path is available (each still checks the config itself:
    ``generation.decoder_plan`` per layer, ``patching.patch_schedule`` per config)."""

    name = "HookedTransformer"

    @classmethod
    def accepts(cls, model) -> bool:
        return isinstance(model, HookedTransformer)

    def hook_module(self, name: str) -> Optional[nn.Module]:
        # mod_dict, not hook_dict: SAELens' HookedSAETransformer splices an SAE in place of a hook point.
        return self.model.mod_dict.get(name)

    def forward(self, tokens, *, attention_mask=None, stop_at_layer=None, return_type="logits"):
        return self.model(tokens, attention_mask=attention_mask, stop_at_layer=stop_at_layer, return_type=return_type)

    def decoder(self, batch_size: int, max_positions: int):
        from .generation import Decoder  # generation imports this module

        return Decoder(self.model, batch_size, max_positions=max_positions)

    def paths(self) -> dict[str, str]:
        return {
            "generate": "workbench's fused KV-cached decoder (per layer and config: generation.decoder_plan)",
            "restart": "start_at_layer restarts (per config: patching.patch_schedule)",
            "early_stop": "probe-only runs stop after the deepest probe (stop_at_layer + early exit)",
            "relp": "RelP's rewritten modules (per config: patching.relp_blocker)",
            "lens": "the logit lens reads long texts in chunks through TransformerLens' KV cache",
        }


class BridgeBackend(Backend):
    """A ``TransformerBridge`` in compatibility mode: hook points by TransformerLens name through its
    ``hook_dict`` aliases; Hugging Face's forward runs the layers."""

    name = "TransformerBridge"
    decoder_blocker = (
        "workbench's fused decoder runs HookedTransformer blocks; a TransformerBridge runs Hugging Face's modules"
    )
    restart_blocker = "TransformerBridge.forward has no start_at_layer (Hugging Face's forward owns the layer loop)"
    rewrite_blocker = (
        "RelP's rules rewrite HookedTransformer's norm, attention and MLP modules; a TransformerBridge runs Hugging "
        "Face's (plain-gradient AtP applies)"
    )

    def __init__(self, model) -> None:
        if not getattr(model, "compatibility_mode", False):
            raise ValueError(
                "this TransformerBridge is not in compatibility mode; call bridge.enable_compatibility_mode() first "
                "(workbench addresses hooks by TransformerLens names such as blocks.0.hook_resid_post, which the "
                "bridge aliases only in that mode)"
            )
        super().__init__(model)

    @classmethod
    def accepts(cls, model) -> bool:
        return isinstance(model, TransformerBridge)

    def hook_module(self, name: str) -> Optional[nn.Module]:
        return self.model.hook_dict.get(name)

    def forward(self, tokens, *, attention_mask=None, stop_at_layer=None, return_type="logits"):
        n_layers = self.cfg.n_layers
        if stop_at_layer is None or stop_at_layer < n_layers:
            return self.model(
                tokens, attention_mask=attention_mask, stop_at_layer=stop_at_layer, return_type=return_type
            )
        if stop_at_layer != n_layers:
            raise ValueError(f"stop_at_layer={stop_at_layer} is past the last layer (cfg.n_layers={n_layers})")

        # The residual after the last block: the bridge's stop_at_layer stops only *before* a block,
        # so stop at the last block's output (hook_resid_post) through the bridge's own exception.
        # Registered last, this hook sees the value after every registry hook on that point.
        def stop(module, inputs, output):
            raise StopAtLayerException(output)

        handle = self.model.blocks[n_layers - 1].hook_out.register_forward_hook(stop)
        try:
            return self.model(tokens, attention_mask=attention_mask, return_type=return_type)
        finally:
            handle.remove()

    def decoder(self, batch_size: int, max_positions: int):
        return _BridgeDecoder(self.model)

    def paths(self) -> dict[str, str]:
        return {
            "generate": f"TransformerBridge forward with Hugging Face's KV cache ({self.decoder_blocker})",
            "restart": f"patching runs every patch from the embedding, schedule 'full' ({self.restart_blocker})",
            "early_stop": "probe-only runs stop after the deepest probe (the bridge's stop_at_layer + early exit)",
            "relp": f"refused ({self.rewrite_blocker})",
            "lens": f"the logit lens reads a text in one plain pass ({self.decoder_blocker})",
        }


def _cache_as_past_key_values(module, args, kwargs):
    """transformers 5 hands the KV cache to attention as ``cache=``; TransformerLens 3.9's attention
    bridges read only ``past_key_values`` (or ``layer_past``) and, not finding it, attend to the new
    tokens alone. Measured here: a cached step's log-probabilities off by 0.19 from the full forward,
    and ``TransformerBridge.generate(use_past_kv_cache=True)`` choosing other tokens than without the
    cache. Passing the same cache under the old name makes every cached step equal the full forward."""
    if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
        kwargs = {**kwargs, "past_key_values": kwargs["cache"]}
    return args, kwargs


class _BridgeDecoder:
    """Incremental decoding through ``TransformerBridge.forward`` with Hugging Face's own KV cache.

    Each chunk runs the bridge's hooked modules on the new columns only, attending to the cached
    keys and values (a ``transformers.DynamicCache`` that the model fills in place), so the registry
    sees the same chunks as with workbench's decoder; the attention mask passed spans the cached
    prefix and the chunk, from which the bridge derives each row's position ids (left padding). The
    logits are Hugging Face's (final norm, unembedding and any output soft-cap of the architecture).
    While a chunk runs, each attention bridge gets the cache under both of its names
    (``_cache_as_past_key_values``); the pre-hooks are removed after every step, also on error."""

    def __init__(self, model: TransformerBridge) -> None:
        from transformers import DynamicCache

        hf = model.original_model
        self.model = model
        self.cache = DynamicCache(config=hf.config)
        # transformers 5 renamed past_key_values to cache (the old name is deprecated)
        self.cache_kwarg = "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"
        self.attention = [m for m in model.modules() if isinstance(m, AttentionBridge)]
        self.full_mask: Optional[Tensor] = None

    def step(
        self, tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"]
    ) -> Float[Tensor, "batch d_vocab"]:
        mask = attention_mask.to(tokens.device)
        self.full_mask = mask if self.full_mask is None else torch.cat([self.full_mask, mask], 1)
        kwargs = {self.cache_kwarg: self.cache, "use_cache": True}
        with contextlib.ExitStack() as stack:
            for attn in self.attention:
                stack.callback(attn.register_forward_pre_hook(_cache_as_past_key_values, with_kwargs=True).remove)
            logits = self.model(tokens, attention_mask=self.full_mask, return_type="logits", **kwargs)
        return logits[:, -1]


_BACKENDS: tuple[type[Backend], ...] = (HookedBackend, BridgeBackend)


def as_backend(model) -> Backend:
    """The backend of ``model`` (a ``Backend`` is returned as is). Raises ``TypeError`` naming the
    supported model types for anything else."""
    if isinstance(model, Backend):
        return model
    for backend in _BACKENDS:
        if backend.accepts(model):
            return backend(model)
    raise TypeError(f"workbench needs a TransformerLens model: {' or '.join(SUPPORTED)}; got {type(model).__name__}")


__all__ = ["SUPPORTED", "Backend", "BridgeBackend", "HookedBackend", "as_backend"]
