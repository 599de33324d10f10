"""Reading activations for many texts through registry probes.

``extract`` tokenises texts (``workbench.tokens.encode``) in batches (sorted by length, so little
padding), registers one probe per site with the requested reduction, and runs ``HookRegistry.run``:
with only probes enabled the forward pass stops right after the deepest requested layer. Positions
are absolute and unpadded, so the result does not depend on the batch size or on the padding side
(tests check this).

SmolLM2 has no BOS token; its first position acts as an attention sink whose residual norm is ~100×
the others, so ``reduce="mean"`` skips the first ``skip_first`` positions (default 1).
"""

from collections.abc import Mapping, Sequence
from typing import Literal, Optional, Union

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from ..edits import Edit
from ..positions import PositionSpec
from ..registry import HookRegistry
from ..sites import Site, SiteLike
from ..tokens import encode, pad_rows, pad_token_id
from ..validation import check_bool, check_choice, check_int, check_texts

Reduce = Literal["last", "mean", "tokens"]


def _sites(model, sites: Union[SiteLike, Sequence[SiteLike]]) -> list[Site]:
    if isinstance(sites, (str, Site)):
        sites = [sites]
    out = [Site.parse(s, model) for s in sites]
    if not out:
        raise ValueError("extract needs at least one site, e.g. 'resid_post.6'")
    return out


def extract(
    model,
    texts: Sequence[str],
    sites: Union[SiteLike, Sequence[SiteLike]],
    reduce: Reduce = "last",
    *,
    batch_size: int = 16,
    padding_side: Literal["left", "right"] = "left",
    skip_first: int = 1,
    max_tokens: int = 256,
    progress: bool = True,
    registry: Optional[HookRegistry] = None,
    steers: Optional[Mapping[SiteLike, Edit]] = None,
    steer_positions: PositionSpec = "all",
) -> dict[str, Float[Tensor, "n d"]]:
    """Activations of ``texts`` at each site, one vector per text: ``{site.short: [n_texts, d]}``.

    ``reduce="last"`` keeps the last token; ``reduce="mean"`` averages tokens from position
    ``skip_first`` on (texts must then have more than ``skip_first`` tokens); ``reduce="tokens"``
    keeps every token from ``skip_first`` on, text after text: ``[Σ (len_i − skip_first), d]``. Texts longer than
    ``max_tokens`` raise. Rows come back in the order of ``texts``.

    ``steers`` (``{site: edit}``) are applied at ``steer_positions`` while reading, so the activations
    are those of the edited model (e.g. the causal estimation of stacked transport maps, which fits
    each layer on activations that the earlier layers' maps already moved); probes read after a steer
    at the same site. Other entries of ``registry`` stay disabled during the read."""
    check_choice("reduce", reduce, ("last", "mean", "tokens"))
    check_int("batch_size", batch_size, min=1)
    check_choice("padding_side", padding_side, ("left", "right"))
    check_int("skip_first", skip_first, min=0)
    check_int("max_tokens", max_tokens, min=1)
    check_bool("progress", progress)
    texts = check_texts("texts", [texts] if isinstance(texts, str) else texts)
    if model.tokenizer is None:
        raise ValueError("extract needs a model with a tokenizer; for token ids use HookRegistry.run directly")
    site_list = _sites(model, sites)
    ids = []
    for i, t in enumerate(texts):
        row = encode(model, t)
        if len(row) > max_tokens:
            raise ValueError(f"text {i} has {len(row)} tokens, more than max_tokens={max_tokens}: {t[:50]!r}...")
        if reduce != "last" and len(row) <= skip_first:
            raise ValueError(
                f"text {i} has {len(row)} token(s); reduce={reduce!r} with skip_first={skip_first} needs more: {t!r}"
            )
        ids.append(row)
    positions = "last" if reduce == "last" else slice(skip_first, None)
    reg = registry if registry is not None else HookRegistry(model)
    names = [f"_extract:{s.short}" for s in site_list]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: dict[str, list[Tensor]] = {s.short: [] for s in site_list}
    pad = pad_token_id(model)
    registered: list[str] = []
    steer_names: list[str] = []
    try:
        for name, s in zip(names, site_list):
            reg.probe(name, s, positions=positions, reduce=None if reduce == "tokens" else reduce, device="cpu")
            registered.append(name)
        for k, (s, edit) in enumerate(dict(steers or {}).items()):
            reg.steer(f"_extract_steer:{k}", s, edit, positions=steer_positions)
            registered.append(f"_extract_steer:{k}")
            steer_names.append(f"_extract_steer:{k}")
        with torch.no_grad(), reg.only(*names, *steer_names):
            starts = range(0, len(order), batch_size)
            for start in tqdm(starts, desc="extract", disable=not progress, leave=False):
                chunk = order[start : start + batch_size]
                batch = pad_rows([ids[i] for i in chunk], pad, padding_side=padding_side)
                reg.run(batch, need_logits=False)
                for name, s in zip(names, site_list):
                    rec = reg.records[name]
                    if reduce == "tokens":  # one [len_i - skip_first, d] block per text
                        out[s.short].extend(r.float().clone() for r in rec)
                    else:
                        out[s.short].append(rec.float().clone())
    finally:
        for name in registered:
            reg.remove(name)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    if reduce == "tokens":
        return {k: torch.cat([v[int(i)] for i in inverse], 0) for k, v in out.items()}
    return {k: torch.cat(v, 0)[inverse] for k, v in out.items()}
