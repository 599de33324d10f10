import inspect

import pytest
import torch

from workbench.concepts import extract
from workbench.registry import HookRegistry

TEXTS = [
    "The cat sat.",
    "A much longer sentence about the weather in the mountains today.",
    "Hello there, friend!",
    "Short one",
    "Tomorrow the market opens at nine and closes late.",
]


@pytest.mark.embedded
@pytest.mark.parametrize("reduce", ["last", "mean"])
def test_extract_is_independent_of_batch_size_and_padding_side(embedded, reduce):
    sites = ["resid_post.1", "resid_post.3"]
    ref = extract(embedded, TEXTS, sites, reduce, batch_size=1, progress=False)
    for bs, side in ((5, "left"), (2, "right"), (5, "right")):
        got = extract(embedded, TEXTS, sites, reduce, batch_size=bs, padding_side=side, progress=False)
        for s in ("resid_post.1", "resid_post.3"):
            assert got[s].shape == (len(TEXTS), embedded.cfg.d_model)
            torch.testing.assert_close(got[s], ref[s], atol=2e-3, rtol=1e-4)
    # the reference itself: one text alone through a plain forward, read with run_with_cache
    _, cache = embedded.run_with_cache(
        embedded.to_tokens(TEXTS[1], prepend_bos=False), names_filter="blocks.3.hook_resid_post"
    )
    h = cache["blocks.3.hook_resid_post"][0]
    expect = h[-1] if reduce == "last" else h[1:].mean(0)
    torch.testing.assert_close(ref["resid_post.3"][1], expect, atol=1e-3, rtol=1e-4)


@pytest.mark.embedded
def test_extract_stops_at_the_deepest_requested_layer(embedded):
    # test instrumentation only: count which blocks finish their forward (block 2 exits early, inside
    # the block, right after its resid_post probe has read)
    calls = {"deep": 0, "read": 0}
    h1 = embedded.blocks[3].register_forward_hook(lambda *a: calls.__setitem__("deep", calls["deep"] + 1))
    h2 = embedded.blocks[1].register_forward_hook(lambda *a: calls.__setitem__("read", calls["read"] + 1))
    try:
        extract(embedded, TEXTS[:2], "resid_post.2", batch_size=2, progress=False)
    finally:
        h1.remove()
        h2.remove()
    assert calls == {"deep": 0, "read": 1}


def test_extract_rejects_bad_input(tiny):
    with pytest.raises(ValueError, match="reduce"):
        inspect.unwrap(extract)(tiny, ["a"], "resid_post.0", "max")  # below the signature check
    with pytest.raises(ValueError, match="tokenizer"):
        extract(tiny, ["a"], "resid_post.0")
    with pytest.raises(ValueError, match="batch_size"):
        extract(tiny, ["a"], "resid_post.0", batch_size=0)


@pytest.mark.embedded
def test_extract_errors_name_the_text_and_leave_no_probe(embedded):
    reg = HookRegistry(embedded)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        extract(embedded, ["fine text", ""], "resid_post.0", registry=reg, progress=False)
    with pytest.raises(ValueError, match="max_tokens"):
        extract(embedded, ["a b c d e f g h"], "resid_post.0", max_tokens=3, registry=reg, progress=False)
    assert len(reg.describe()) == 0


@pytest.mark.embedded
def test_extract_tokens_and_steered_reads_match_transformer_lens(embedded):
    """``reduce="tokens"`` is every token after the first, text after text; ``steers`` read the edited
    model (checked against run_with_cache with a TransformerLens hook doing the same edit)."""
    from workbench.edits import AddVector

    got = extract(embedded, TEXTS, "resid_post.3", "tokens", batch_size=2, progress=False)["resid_post.3"]
    v = torch.randn(embedded.cfg.d_model, generator=torch.Generator().manual_seed(0))
    steered = extract(
        embedded,
        TEXTS,
        "resid_post.3",
        "mean",
        steers={"resid_post.1": AddVector(v, 3.0)},
        batch_size=2,
        progress=False,
    )["resid_post.3"]
    plain, moved = [], []
    for t in TEXTS:
        tokens = embedded.to_tokens(t, prepend_bos=False)
        _, cache = embedded.run_with_cache(tokens, names_filter="blocks.3.hook_resid_post")
        plain.append(cache["blocks.3.hook_resid_post"][0, 1:])
        with embedded.hooks(fwd_hooks=[("blocks.1.hook_resid_post", lambda a, hook: a + 3.0 * v)]):
            _, cache = embedded.run_with_cache(tokens, names_filter="blocks.3.hook_resid_post")
        moved.append(cache["blocks.3.hook_resid_post"][0, 1:].mean(0))
    torch.testing.assert_close(got, torch.cat(plain, 0), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(steered, torch.stack(moved), atol=1e-3, rtol=1e-4)
