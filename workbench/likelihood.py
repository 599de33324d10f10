"""Log-likelihood of tokens under a model: the one perplexity helper of workbench.

For a row of tokens ``x_1..x_T`` and a set ``M`` of scored positions (each ``t ≥ 2``),

    NLL = − Σ_{t ∈ M} log p(x_t | x_<t),        count = |M|,        perplexity = exp(NLL / count).

The steering bake-off scores completions, the SAE replication scores generations; both pool these
per-row sums and counts as they need (per-row mean, or pooled over rows).
"""

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .registry import HookRegistry
from .tokens import pad_rows, pad_token_id
from .validation import check_int


def token_nll(
    model,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    target_mask: Bool[Tensor, "batch pos"],
    *,
    batch_size: int = 16,
) -> tuple[Float[Tensor, " batch"], Int[Tensor, " batch"]]:
    """Per row: ``(Σ_{t ∈ M} −log p(x_t | x_<t), |M|)`` with ``M`` = the true entries of
    ``target_mask`` (column 0 cannot be scored). Runs through a ``HookRegistry`` with nothing
    registered, so left or right padding keeps absolute positions right."""
    check_int("batch_size", batch_size, min=1)
    if tokens.shape != attention_mask.shape or tokens.shape != target_mask.shape or tokens.ndim != 2:
        raise ValueError(
            f"tokens, attention_mask and target_mask must share one [batch, pos] shape, got "
            f"{tuple(tokens.shape)}, {tuple(attention_mask.shape)}, {tuple(target_mask.shape)}"
        )
    if bool(target_mask[:, 0].any()):
        raise ValueError("target_mask marks column 0, which has no preceding token to predict it from")
    if bool((target_mask & (attention_mask == 0)).any()):
        raise ValueError("target_mask marks padding positions (attention_mask == 0)")
    reg = HookRegistry(model)
    sums, counts = [], []
    with torch.no_grad():
        for s in range(0, tokens.shape[0], batch_size):
            t, m = tokens[s : s + batch_size], attention_mask[s : s + batch_size]
            logits = reg.run(t, attention_mask=m, need_logits=True)
            if logits is None:  # need_logits=True always returns them; a None here is a registry bug
                raise RuntimeError("HookRegistry.run(need_logits=True) returned no logits")
            logp = logits[:, :-1].float().log_softmax(-1)
            nll = -logp.gather(-1, t[:, 1:, None].to(logp.device))[..., 0]
            mk = target_mask[s : s + batch_size, 1:].to(nll.device)
            sums.append((nll * mk).sum(1).cpu())
            counts.append(mk.sum(1).cpu())
    return torch.cat(sums), torch.cat(counts)


def completion_nll(
    model,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 16,
) -> tuple[Float[Tensor, " batch"], Int[Tensor, " batch"]]:
    """``token_nll`` of each completion given its prompt (rows ``prompt + completion``, only the
    completion scored). An empty completion gives ``(0.0, 0)``; an empty prompt is refused."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token (the first completion token is predicted from it)")
    rows = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
    batch = pad_rows(rows, pad_token_id(model), padding_side="right")
    target = torch.zeros_like(batch.tokens, dtype=torch.bool)
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        target[i, len(p) : len(p) + len(c)] = True
    return token_nll(model, batch.tokens, batch.attention_mask, target, batch_size=batch_size)


__all__ = ["completion_nll", "token_nll"]
