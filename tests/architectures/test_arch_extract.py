"""Concept extraction (``workbench.concepts.extract.extract``) on every architecture family: the same
vectors whatever the batch size and padding side, equal to a brute-force reference (each text alone,
unpadded, through TransformerLens' ``run_with_cache``)."""

import pytest
import torch
from architectures import with_tokenizer

from workbench.concepts.extract import extract

SITES = ("resid_post.0", "attn_out.1", "resid_pre.1")


def _texts(n: int = 7, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 11, (n,), generator=g).tolist()
    return [" ".join(f"w{int(i)}" for i in torch.randint(0, 500, (k,), generator=g)) for k in lengths]


def _reference(model, texts, reduce: str, skip_first: int = 1) -> dict[str, torch.Tensor]:
    out = {s: [] for s in SITES}
    for t in texts:
        ids = torch.tensor([model.tokenizer(t)["input_ids"]])
        _, cache = model.run_with_cache(ids)
        for s in SITES:
            layer = int(s.rsplit(".", 1)[1])
            act = cache[f"blocks.{layer}.hook_{s.rsplit('.', 1)[0]}"][0]
            out[s].append(act[-1] if reduce == "last" else act[skip_first:].mean(0))
    return {s: torch.stack(v) for s, v in out.items()}


@pytest.mark.parametrize("reduce", ["last", "mean"])
def test_extract_invariant_to_batch_and_padding(arch_model, reduce):
    model = with_tokenizer(arch_model)
    texts = _texts()
    want = _reference(model, texts, reduce)
    for batch_size, side in ((1, "left"), (3, "left"), (3, "right"), (16, "right")):
        got = extract(model, texts, list(SITES), reduce, batch_size=batch_size, padding_side=side, progress=False)
        for s in SITES:
            w = want[s]
            torch.testing.assert_close(
                got[s], w, atol=1e-5 * max(1.0, float(w.abs().max())), rtol=1e-5, msg=f"{s} b={batch_size} {side}"
            )
