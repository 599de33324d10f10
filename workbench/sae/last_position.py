"""Re-running only the last position of a prompt from a given layer, with the earlier positions'
keys and values computed once.

Under causal attention the keys and values of positions ``< T`` do not depend on position ``T``,
so when only the last position's residual is edited (entering block ``L``), blocks ``L..`` need to
run on that one position, attending to a frozen cache of the prefix. TransformerLens' forward with
``start_at_layer`` and ``past_kv_cache`` does this, and its attention handles the query's absolute
position relative to the cache: rotary offsets, ALiBi rows, local (sliding-window) masks, soft-caps
of the attention scores. The logits then come from :func:`workbench.readout.resid_to_logits`
(final norm, unembedding, output soft-cap), exactly as ``HookedTransformer.forward`` ends.

Configs this does not reproduce are refused with an error naming the config field
(:func:`check_last_position_restart`): bidirectional attention (earlier positions would see the
edit), shortformer positions (added to every layer's attention input, which ``start_at_layer``
does not receive), and relative positional biases (encoder-decoder models).
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..readout import resid_to_logits


def last_position_restart_problem(model) -> str | None:
    """Why :func:`last_position_logits` cannot reproduce this model's forward pass (naming the
    config field), or None when it can."""
    cfg = model.cfg
    if getattr(cfg, "attention_dir", "causal") != "causal":
        return f"cfg.attention_dir={cfg.attention_dir!r}: earlier positions would attend to the edited last one"
    pos = getattr(cfg, "positional_embedding_type", "standard")
    if pos == "shortformer":
        return "cfg.positional_embedding_type='shortformer': every layer adds positions that start_at_layer cannot pass"
    if pos == "relative_positional_bias":
        return "cfg.positional_embedding_type='relative_positional_bias' is not supported by the cached restart"
    if not hasattr(model, "blocks") or not hasattr(cfg, "n_layers"):
        return "the model is not a HookedTransformer (no blocks to restart from)"
    return None


def check_last_position_restart(model) -> None:
    """Raise ``ValueError`` naming the config field when the cached restart does not apply."""
    problem = last_position_restart_problem(model)
    if problem is not None:
        raise ValueError(f"the cached last-position restart does not cover this model: {problem}; use method='full'")


def prefix_kv_cache(model, prefix_tokens: Int[Tensor, "1 pos"]):
    """Keys and values of every layer for the prompt without its last token (one forward pass)."""
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    check_last_position_restart(model)
    if prefix_tokens.ndim != 2 or prefix_tokens.shape[0] != 1 or prefix_tokens.shape[1] < 1:
        raise ValueError(f"prefix_tokens must be one non-empty row [1, pos], got {tuple(prefix_tokens.shape)}")
    prefix_tokens = prefix_tokens.to(model.cfg.device)
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)
    with torch.no_grad():
        model(
            prefix_tokens,
            attention_mask=torch.ones_like(prefix_tokens),
            past_kv_cache=cache,
            stop_at_layer=model.cfg.n_layers,
        )
    return cache


def last_position_logits(
    model, last_resid: Float[Tensor, "batch d_model"], start_at_layer: int, prefix_cache=None
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at the last prompt position when its residual entering block ``start_at_layer`` is
    ``last_resid`` (one row per batch element) and the earlier positions are unchanged.

    ``prefix_cache`` (from :func:`prefix_kv_cache`; None for a one-token prompt) is frozen and
    shared by every row: blocks ``start_at_layer..`` run on one position per row, then the readout."""
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
    from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

    check_last_position_restart(model)
    n_layers = model.cfg.n_layers
    if isinstance(start_at_layer, bool) or not isinstance(start_at_layer, int) or not 0 <= start_at_layer <= n_layers:
        raise ValueError(f"start_at_layer must be an int in 0..{n_layers}, got {start_at_layer!r}")
    if last_resid.ndim != 2 or last_resid.shape[1] != model.cfg.d_model:
        raise ValueError(f"last_resid must be [batch, d_model={model.cfg.d_model}], got {tuple(last_resid.shape)}")
    B = last_resid.shape[0]
    resid = last_resid[:, None].to(model.cfg.device, model.cfg.dtype)
    if start_at_layer < n_layers:
        cache = None
        if prefix_cache is not None:
            entries = [
                TransformerLensKeyValueCacheEntry(
                    e.past_keys.expand(B, -1, -1, -1), e.past_values.expand(B, -1, -1, -1), frozen=True
                )
                for e in prefix_cache.entries
            ]
            cache = TransformerLensKeyValueCache(
                entries, prefix_cache.previous_attention_mask.expand(B, -1), frozen=True
            )
        resid = model(resid, start_at_layer=start_at_layer, stop_at_layer=n_layers, past_kv_cache=cache)
    return resid_to_logits(model, resid)[:, -1]


__all__ = ["check_last_position_restart", "last_position_logits", "last_position_restart_problem", "prefix_kv_cache"]
