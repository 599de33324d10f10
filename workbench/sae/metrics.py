"""Held-out quality metrics for a sparse autoencoder spliced into a HookedTransformer.

Notation: ``x_t in R^d`` is the activation at the hook for evaluated token ``t`` (``N`` of them),
``f(x_t) in R^m`` the SAE latents and ``x̂_t = W_dec f(x_t) + b_dec`` the reconstruction.

* **FVU** (fraction of variance unexplained)
  ``FVU = sum_t ||x_t - x̂_t||^2 / sum_t ||x_t - x̄||^2`` with ``x̄ = (1/N) sum_t x_t``;
  ``1 - FVU`` is the explained variance. The denominator is accumulated in float64 as
  ``sum_t ||x_t||^2 - N ||x̄||^2``. ``fvu_excl_top_dim`` is the same ratio with the single
  highest-variance coordinate left out (see :class:`ActivationStats`).
* **L0** ``= (1/N) sum_t #{i : f_i(x_t) != 0}``, the mean number of active latents per token.
* **dead share** ``= #{i : f_i(x_t) = 0 for every t} / m``, latents that never fire on these tokens.
* **CE** is the mean next-token cross-entropy ``-(1/|P|) sum_{(b,p) in P} log softmax(logits_{b,p})[tok_{b,p+1}]``
  over all predicting positions ``P`` (every position but the last of each sequence), for the clean
  model (``CE_clean``), with ``x̂`` replacing the activation (``CE_sae``) and with the activation
  replaced by zeros (``CE_zero``, the standard zero-ablation baseline, at *every* position).
* **CE recovered** ``= (CE_zero - CE_sae) / (CE_zero - CE_clean)``: 1 when the SAE is as good as the
  clean activation, 0 when it is as bad as deleting it.

``skip_positions`` leading positions of every sequence are left unchanged by the SAE and excluded
from FVU, L0 and dead share (as SAELens leaves BOS tokens alone). SmolLM2 runs without a BOS token,
so its first position acts as the attention sink with a residual norm ~100x the others (e.g.
~2.4e4 vs ~2e2 at layer 15); the default ``skip_positions=1`` treats it like a BOS.

For ``blocks.{L}.hook_resid_post`` hooks the patched runs restart from block ``L+1``
(``start_at_layer``) on the activation captured in the clean run, which gives the same numbers as
hooking a full forward pass at a fraction of the cost (not for shortformer positions, which every
layer re-adds); other hooks edit a full forward pass through a ``HookRegistry`` steer.
"""

import re
from typing import Optional, cast

import torch

from ..edits import Replace
from ..registry import HookRegistry
from ..validation import check_int

_RESID_POST = re.compile(r"blocks\.(\d+)\.hook_resid_post")


class ActivationStats:
    """Running sums for FVU, L0 and dead share over batches of activations ``[n, d]``.

    Besides the FVU it reports how concentrated the variance is: ``top_variance_dim`` is the
    coordinate ``j`` with the largest variance, ``top_variance_share = Var_j / sum_j' Var_j'``, and
    ``fvu_excl_top_dim`` is the FVU with coordinate ``j`` left out of numerator and denominator.
    SmolLM2's residual stream has one "massive" coordinate (507) holding most of the variance in the
    middle layers, which makes the plain FVU look better than the rest of the reconstruction is."""

    def __init__(self, d_in: int, d_sae: int) -> None:
        self.n = 0
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.sum_sq = torch.zeros(d_in, dtype=torch.float64)
        self.sum_err = torch.zeros(d_in, dtype=torch.float64)
        self.l0_sum = 0.0
        self.fired = torch.zeros(d_sae, dtype=torch.long)

    def update(self, x: torch.Tensor, x_hat: torch.Tensor, feats: torch.Tensor) -> None:
        x64 = x.reshape(-1, x.shape[-1]).double()
        self.n += x64.shape[0]
        self.sum_x += x64.sum(0).cpu()
        self.sum_sq += x64.pow(2).sum(0).cpu()
        self.sum_err += (x64 - x_hat.reshape(x64.shape).double()).pow(2).sum(0).cpu()
        active = feats.reshape(-1, feats.shape[-1]) != 0
        self.l0_sum += float(active.sum())
        self.fired += active.sum(0).cpu()

    def result(self) -> dict:
        if self.n == 0:
            raise ValueError("no activations were evaluated")
        var = self.sum_sq - self.sum_x.pow(2) / self.n  # n * per-coordinate variance
        total_var, total_err = float(var.sum()), float(self.sum_err.sum())
        top = int(var.argmax())
        rest_var = total_var - float(var[top])
        return {
            "fvu": total_err / total_var if total_var > 0 else float("nan"),
            "mse_per_token": total_err / self.n,
            "l0": self.l0_sum / self.n,
            "dead_share": float((self.fired == 0).float().mean()),
            "n_dead": int((self.fired == 0).sum()),
            "n_tokens": self.n,
            "top_variance_dim": top,
            "top_variance_share": float(var[top]) / total_var if total_var > 0 else float("nan"),
            "fvu_excl_top_dim": (total_err - float(self.sum_err[top])) / rest_var if rest_var > 0 else float("nan"),
        }


def _sae_apply(sae, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x̂, f)`` on ``x``'s device and dtype (the SAE may live on another device)."""
    feats = sae.encode(x.to(sae.device, sae.dtype))
    return sae.decode(feats).to(x.device, x.dtype), feats


@torch.no_grad()
def activation_metrics(sae, acts: torch.Tensor, *, batch_size: int = 4096) -> dict:
    """FVU, L0 and dead share (see module docstring) of ``sae`` on stored activations ``[n, d]``
    (already stripped of any skipped positions). Also returns per-latent firing counts."""
    stats = ActivationStats(sae.cfg.d_in, sae.cfg.d_sae)
    for i in range(0, acts.shape[0], batch_size):
        x = acts[i : i + batch_size].to(sae.device).float()
        x_hat, feats = _sae_apply(sae, x)
        stats.update(x, x_hat, feats)
    out = stats.result()
    out["fire_counts"] = stats.fired.clone()
    return out


def _sum(loss_per_token: torch.Tensor) -> float:
    return float(loss_per_token.double().sum())


def _loss_per_token(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``-log softmax(logits)[:, :-1]`` at the next tokens: TransformerLens' own per-token loss."""
    from transformer_lens.utilities.lm_utils import lm_cross_entropy_loss

    return lm_cross_entropy_loss(logits, tokens.to(logits.device), per_token=True)


@torch.no_grad()
def evaluate_sae(
    model,
    sae,
    hook_name: str,
    tokens: torch.Tensor,
    *,
    batch_size: int = 16,
    skip_positions: int = 1,
    progress: bool = False,
) -> dict:
    """Evaluate ``sae`` at ``hook_name`` of ``model`` on token sequences ``[n_seq, seq_len]``.

    Returns ``fvu``, ``l0``, ``dead_share``, ``n_dead``, ``mse_per_token``, ``ce_clean``, ``ce_sae``,
    ``ce_zero_ablation``, ``ce_recovered``, ``ce_delta`` (``CE_sae - CE_clean``) and token counts;
    the formulas are in the module docstring."""
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be [n_seq, seq_len >= 2], got {tuple(tokens.shape)}")
    check_int("skip_positions", skip_positions, min=0, max=tokens.shape[1] - 1)
    check_int("batch_size", batch_size, min=1)
    m = _RESID_POST.fullmatch(hook_name)
    restartable = getattr(model.cfg, "positional_embedding_type", "standard") != "shortformer"
    fast_layer: Optional[int] = None
    if m is not None and restartable and int(m.group(1)) + 1 < model.cfg.n_layers:
        fast_layer = int(m.group(1))

    stats = ActivationStats(sae.cfg.d_in, sae.cfg.d_sae)
    ce = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    n_pred = 0
    from tqdm.auto import tqdm

    for i in tqdm(
        range(0, tokens.shape[0], batch_size), desc=f"eval {hook_name}", mininterval=10, disable=not progress
    ):
        toks = tokens[i : i + batch_size].to(model.cfg.device)
        reg = HookRegistry(model)
        reg.probe("x", hook_name)
        loss_clean = _loss_per_token(cast(torch.Tensor, reg.run(toks, need_logits=True)), toks)
        x = cast(torch.Tensor, reg.records["x"])  # unpadded rows, every position: one [B, T, d] tensor
        x_hat, feats = _sae_apply(sae, x)
        x_patched = x.clone()
        x_patched[:, skip_positions:] = x_hat[:, skip_positions:]
        stats.update(x[:, skip_positions:], x_hat[:, skip_positions:], feats[:, skip_positions:])

        if fast_layer is not None:
            kw = dict(start_at_layer=fast_layer + 1, tokens=toks, return_type="loss", loss_per_token=True)
            loss_sae = model(x_patched, **kw)
            loss_zero = model(torch.zeros_like(x), **kw)
        else:
            losses = []
            for values in (x_patched, torch.zeros_like(x)):
                reg = HookRegistry(model)
                reg.steer("replace", hook_name, Replace(values))
                losses.append(_loss_per_token(cast(torch.Tensor, reg.run(toks, need_logits=True)), toks))
            loss_sae, loss_zero = losses
        ce["clean"] += _sum(loss_clean)
        ce["sae"] += _sum(loss_sae)
        ce["zero"] += _sum(loss_zero)
        n_pred += loss_clean.numel()

    out = stats.result()
    ce_clean, ce_sae, ce_zero = (ce[k] / n_pred for k in ("clean", "sae", "zero"))
    out.update(
        ce_clean=ce_clean,
        ce_sae=ce_sae,
        ce_zero_ablation=ce_zero,
        ce_delta=ce_sae - ce_clean,
        ce_recovered=(ce_zero - ce_sae) / (ce_zero - ce_clean) if ce_zero != ce_clean else float("nan"),
        n_sequences=int(tokens.shape[0]),
        n_predictions=n_pred,
        skip_positions=skip_positions,
        hook_name=hook_name,
    )
    return out
