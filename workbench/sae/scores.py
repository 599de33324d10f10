"""Input and output scores of SAE features (Arad, Mueller & Belinkov 2025, "SAEs are good for
steering — if you select the right features"; METHODS.md section 2).

With ``T_i`` the top-20 logit-lens tokens of feature ``i`` (:mod:`workbench.sae.feature_lens`):

* **Input score** ``S_in(i)``: among the feature's top-activating examples (the first 100, by the
  feature's maximum activation in the example; features with fewer than 10 examples get NaN), the
  fraction whose max-activating token is in ``T_i``. The examples come from
  :func:`workbench.sae.top_examples.collect_top_examples`.
* **Output score** ``S_out(i)``: on the neutral prompt (:func:`workbench.prompts.sae_output_score_prompt`,
  ``"From my experience,"``), at the SAE's site and the last position, ``f = enc(x)``,
  ``f_i += 10 · max_j f_j``, written back as ``dec(f') + (x − dec(f))``. With the next-token
  distribution ``q`` and ``r = min_{t∈T_i} rank_q(t)`` (0-based),
  ``S_out(i) = (1 − r/|V|) · max_{t∈T_i} q(t)``. Ranks count the tokens with strictly larger
  probability (ties resolve in favour of ``T_i``).

:func:`output_scores` batches many features per forward pass (row ``b`` steers feature ``b``) and,
for residual-stream SAEs, restarts at the SAE's layer on the last position only
(:mod:`workbench.sae.last_position`). :func:`output_scores_naive` is the reference: one full
forward pass per feature, the edit applied by a registry steer. Both use the same edit
(:func:`workbench.sae.steering.amplify_feature`) and the model's own readout (soft-cap included).
"""

from collections.abc import Sequence
from typing import Optional, Union, cast

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..prompts import sae_output_score_prompt
from ..registry import HookRegistry
from ..tokens import tokenize
from ..validation import check_bool, check_choice, check_float, check_int
from .feature_lens import LOGIT_LENS_K, FeatureLens, lens_top_tokens
from .last_position import (
    check_last_position_restart,
    last_position_logits,
    last_position_restart_problem,
    prefix_kv_cache,
)
from .loading import sae_site
from .steering import AmplifyFeature, amplify_feature, check_sae, feature_indices
from .top_examples import N_TOP_EXAMPLES, TopExamples

MIN_EXAMPLES = 10
OUTPUT_FACTOR = 10.0
METHODS = ("auto", "cached", "full")


# ----------------------------------------------------------------------------- input score


def input_scores(
    max_tokens: Int[Tensor, "d_sae k"],
    valid: Bool[Tensor, "d_sae k"],
    lens_top_tokens: Int[Tensor, "d_sae k_lens"],
    *,
    n_examples: int = N_TOP_EXAMPLES,
    min_examples: int = MIN_EXAMPLES,
) -> Float[Tensor, " d_sae"]:
    """``S_in(i)``: the share of feature ``i``'s first ``n_examples`` valid top-activating examples
    (columns sorted by activation, descending) whose max-activating token is in ``T_i``; NaN for
    features with fewer than ``min_examples`` examples or without a lens."""
    if max_tokens.shape != valid.shape or max_tokens.shape[0] != lens_top_tokens.shape[0]:
        raise ValueError(
            f"shapes disagree: max_tokens {tuple(max_tokens.shape)}, valid {tuple(valid.shape)}, "
            f"lens_top_tokens {tuple(lens_top_tokens.shape)}"
        )
    check_int("n_examples", n_examples, min=1)
    check_int("min_examples", min_examples, min=0)
    use = valid & (valid.long().cumsum(1) <= n_examples)
    hit = (max_tokens[:, :, None] == lens_top_tokens[:, None, :]).any(-1) & use
    n = use.sum(1)
    score = hit.sum(1).float() / n.clamp_min(1).float()
    has_lens = (lens_top_tokens >= 0).all(1)
    return torch.where((n >= min_examples) & has_lens, score, torch.full_like(score, float("nan")))


def input_scores_from_examples(examples: TopExamples, lens: FeatureLens, **kwargs) -> Float[Tensor, " d_sae"]:
    """:func:`input_scores` of collected examples against a feature lens."""
    return input_scores(examples.token, examples.valid, lens.top_tokens, **kwargs)


# ----------------------------------------------------------------------------- output score


def output_score_from_logits(
    logits: Float[Tensor, "batch d_vocab"], top_tokens: Int[Tensor, "batch k"]
) -> Float[Tensor, " batch"]:
    """``S_out = (1 − r/|V|) · max_{t∈T} q(t)`` with ``q = softmax(logits)`` and
    ``r = min_{t∈T} rank_q(t)`` = the number of tokens more probable than the best token of ``T``."""
    if logits.ndim != 2 or top_tokens.ndim != 2 or logits.shape[0] != top_tokens.shape[0]:
        raise ValueError(
            f"need logits [batch, vocab] and top_tokens [batch, k], got {tuple(logits.shape)} "
            f"and {tuple(top_tokens.shape)}"
        )
    q = logits.float().softmax(-1)
    q_best = q.gather(1, top_tokens.to(q.device)).max(1).values
    rank = (q > q_best[:, None]).sum(1)
    return (1 - rank.float() / q.shape[1]) * q_best


def _prompt_tokens(model, prompt) -> Int[Tensor, "1 pos"]:
    if prompt is None:
        prompt = sae_output_score_prompt()
    if isinstance(prompt, str):
        return tokenize(model, prompt).tokens
    t = torch.as_tensor(prompt)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[0] != 1 or t.shape[1] == 0 or t.is_floating_point():
        raise ValueError(f"prompt must be a string or one non-empty row of token ids, got {tuple(t.shape)}")
    return t


def _output_score_inputs(model, sae, lens, features, prompt, factor, k):
    """What both output-score paths check and need: the SAE's site, the feature indices, each
    feature's top lens tokens ``T_i`` and the prompt's token ids on the model's device."""
    check_float("factor", factor)
    check_sae(sae)
    site = sae_site(sae, model)
    idx = feature_indices(sae, features)
    top = lens_top_tokens(model, sae, lens, k, idx)
    tokens = _prompt_tokens(model, prompt).to(model.cfg.device)
    return site, idx, top, tokens


def _last_logits(reg: HookRegistry, tokens: Tensor) -> Float[Tensor, "batch d_vocab"]:
    logits = reg.run(tokens, need_logits=True)
    if logits is None:  # need_logits=True always returns them; a None here is a registry bug
        raise RuntimeError("HookRegistry.run(need_logits=True) returned no logits")
    return logits[:, -1]


def output_scores(
    model,
    sae,
    lens: Optional[FeatureLens] = None,
    features: Optional[Union[Sequence[int], Tensor]] = None,
    *,
    prompt=None,
    factor: float = OUTPUT_FACTOR,
    batch_size: int = 128,
    method: str = "auto",
    k: int = LOGIT_LENS_K,
    progress: bool = True,
) -> Float[Tensor, " n_features"]:
    """``S_out`` for ``features`` (default: all), many features per forward pass, on ``prompt``
    (default :func:`workbench.prompts.sae_output_score_prompt`; a string or one row of token ids).

    ``method="cached"`` (residual-stream SAEs): run the prompt once to the SAE's site (registry
    probe) and once more without its last token to cache every layer's keys and values; then each
    batch of edited last-position residuals restarts at the next block
    (:func:`workbench.sae.last_position.last_position_logits`). ``method="full"``: full forward
    passes over ``batch_size`` copies of the prompt with a per-row :class:`AmplifyFeature` steer at
    the last position. ``"auto"`` picks ``"cached"`` when the site is ``resid_pre`` / ``resid_post``
    and the model's config allows the restart, else ``"full"``."""
    from tqdm.auto import tqdm

    check_choice("method", method, METHODS)
    check_int("batch_size", batch_size, min=1)
    check_bool("progress", progress)
    site, idx, top, tokens = _output_score_inputs(model, sae, lens, features, prompt, factor, k)
    resid_site = site.stream in ("resid_pre", "resid_post") and site.layer is not None
    if method == "cached":
        if not resid_site:
            raise ValueError(
                f"method='cached' needs a resid_pre/resid_post SAE, this one is at {site}; use method='full'"
            )
        check_last_position_restart(model)
    use_cache = method == "cached" or (method == "auto" and resid_site and last_position_restart_problem(model) is None)
    reg = HookRegistry(model)
    scores = []
    with torch.no_grad():
        if use_cache:
            reg.probe("x", site)
            reg.run(tokens)
            x = cast(Tensor, reg.records["x"])  # [1, T, d]
            layer = cast(int, site.layer)  # a resid_pre / resid_post site has a layer
            start = layer + 1 if site.stream == "resid_post" else layer
            reg.clear()
            prefix = prefix_kv_cache(model, tokens[:, :-1]) if tokens.shape[1] > 1 else None
        bar = tqdm(total=len(idx), desc=f"output scores {site.short}", disable=not progress, leave=False)
        for part in idx.split(batch_size):
            B = part.numel()
            if use_cache:
                last = amplify_feature(sae, x[:, -1].expand(B, -1), part, factor)
                logits = last_position_logits(model, last, start, prefix)
            else:
                reg.steer("amplify", site, AmplifyFeature(sae, part, factor), positions="last")
                logits = _last_logits(reg, tokens.expand(B, -1))
                reg.remove("amplify")
            scores.append(output_score_from_logits(logits, top[part]).cpu())
            bar.update(B)
        bar.close()
    return torch.cat(scores) if scores else torch.zeros(0)


def output_scores_naive(
    model,
    sae,
    lens: Optional[FeatureLens] = None,
    features: Optional[Union[Sequence[int], Tensor]] = None,
    *,
    prompt=None,
    factor: float = OUTPUT_FACTOR,
    k: int = LOGIT_LENS_K,
    progress: bool = True,
) -> Float[Tensor, " n_features"]:
    """The reference loop: for each feature, one full forward pass of the prompt with a registry
    steer (:class:`AmplifyFeature`) at the SAE's site on the last position."""
    from tqdm.auto import tqdm

    check_bool("progress", progress)
    site, idx, top, tokens = _output_score_inputs(model, sae, lens, features, prompt, factor, k)
    reg = HookRegistry(model)
    out = []
    with torch.no_grad():
        for i in tqdm(idx.tolist(), desc=f"output scores (naive) {site.short}", disable=not progress, leave=False):
            reg.steer("amplify", site, AmplifyFeature(sae, i, factor), positions="last")
            logits = _last_logits(reg, tokens)
            reg.remove("amplify")
            out.append(output_score_from_logits(logits, top[[i]]).cpu())
    return torch.cat(out) if out else torch.zeros(0)


__all__ = [
    "MIN_EXAMPLES",
    "OUTPUT_FACTOR",
    "input_scores",
    "input_scores_from_examples",
    "output_score_from_logits",
    "output_scores",
    "output_scores_naive",
]
