"""Input and output scores against the definitions of Arad, Mueller & Belinkov (2025), computed by
hand or with independent references (SAELens' own error-term forward, TransformerLens hooks)."""

import inspect
import math

import pytest
import torch
from sae_helpers import reference_output_scores, tiny_sae

from workbench.sae.feature_lens import FeatureLens, feature_logit_lens
from workbench.sae.scores import (
    input_scores,
    input_scores_from_examples,
    output_score_from_logits,
    output_scores,
    output_scores_naive,
)
from workbench.sae.tables import score_table, select_features
from workbench.sae.top_examples import TopExamples, collect_top_examples

PROMPT = torch.tensor([3, 7, 11, 2, 9])


# ----------------------------------------------------------------------------- pure definitions


def test_output_score_by_hand():
    # q = softmax(log p) = p; vocabulary of 6
    p = torch.tensor([[0.40, 0.25, 0.15, 0.10, 0.06, 0.04]])
    # T = {2, 4}: best token 2 has q = 0.15 and rank 2 (tokens 0, 1 are more probable)
    s = output_score_from_logits(p.log(), torch.tensor([[4, 2]]))
    assert s.item() == pytest.approx((1 - 2 / 6) * 0.15, abs=1e-7)
    # T contains the argmax: rank 0
    s = output_score_from_logits(p.log(), torch.tensor([[5, 0]]))
    assert s.item() == pytest.approx(0.40, abs=1e-7)
    # the rank is the min over T (token 5 ranks last, token 3 ranks 3)
    s = output_score_from_logits(p.log(), torch.tensor([[5, 3]]))
    assert s.item() == pytest.approx((1 - 3 / 6) * 0.10, abs=1e-7)


def test_input_score_by_hand():
    # 2 features, 5 example slots, logit-lens top tokens of size 2
    max_tokens = torch.tensor([[4, 9, 4, 1, -1], [7, 7, 7, 8, 3]])
    valid = torch.tensor([[True, True, True, True, False], [True, True, True, True, True]])
    top = torch.tensor([[4, 1], [3, 0]])
    s = input_scores(max_tokens, valid, top, n_examples=100, min_examples=2)
    assert s.tolist() == pytest.approx([3 / 4, 1 / 5])
    # only the first n_examples count
    s = input_scores(max_tokens, valid, top, n_examples=3, min_examples=2)
    assert s.tolist() == pytest.approx([2 / 3, 0.0])
    # features with fewer than min_examples are skipped (NaN)
    s = input_scores(max_tokens, valid, top, n_examples=100, min_examples=5)
    assert math.isnan(s[0]) and s[1] == pytest.approx(1 / 5)


def test_logit_lens_is_softmax_of_unembedded_final_norm(tiny):
    sae = tiny_sae("blocks.1.hook_resid_post")
    lens = feature_logit_lens(tiny, sae, k=5, n_bottom=3)
    d = sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)  # TopK SAE with decoder-norm rescaling
    # RMSNorm by hand: d / sqrt(mean(d^2) + eps) * w, then W_U, b_U
    h = d / (d.pow(2).mean(-1, keepdim=True) + tiny.cfg.eps).sqrt() * tiny.ln_final.w
    logits = h @ tiny.W_U + tiny.b_U
    p = logits.softmax(-1)
    ref = p.topk(5, dim=-1)
    assert torch.equal(lens.top_tokens, ref.indices)
    torch.testing.assert_close(lens.top_probs, ref.values, atol=1e-6, rtol=1e-5)
    assert torch.equal(lens.bottom_tokens, logits.topk(3, dim=-1, largest=False).indices)


# ----------------------------------------------------------------------------- output scores on a model


def test_output_scores_match_saelens_reference():
    from workbench.models import tiny_model

    model = tiny_model(n_layers=3)
    sae = tiny_sae("blocks.1.hook_resid_post")
    lens = feature_logit_lens(model, sae, k=5)
    feats = [0, 5, 17, 30]
    got = output_scores(model, sae, lens, feats, prompt=PROMPT, progress=False)
    ref = reference_output_scores(model, sae, feats, lens.top_tokens[feats], PROMPT)
    assert got.tolist() == pytest.approx(ref, abs=2e-6)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_batched_output_scores_equal_the_naive_loop(layer):
    """float64: the batched, layer-skipping, prefix-KV path equals one full forward per feature
    exactly; float32: to rounding."""
    from workbench.models import tiny_model

    for dtype, tol in ((torch.float64, 0.0), (torch.float32, 1e-6)):
        model = tiny_model(n_layers=3).to(dtype)
        sae = tiny_sae(f"blocks.{layer}.hook_resid_post", d_sae=16, k=4, dtype=str(dtype).split(".")[1])
        lens = feature_logit_lens(model, sae, k=5)
        naive = output_scores_naive(model, sae, lens, prompt=PROMPT, progress=False)
        batched = output_scores(model, sae, lens, prompt=PROMPT, batch_size=6, progress=False)
        full = output_scores(model, sae, lens, prompt=PROMPT, batch_size=6, method="full", progress=False)
        assert (batched - naive).abs().max().item() <= tol
        assert (full - naive).abs().max().item() <= tol
        assert naive.std() > 0


def test_output_scores_resid_pre_and_other_sites():
    from workbench.models import tiny_model

    model = tiny_model(n_layers=2).to(torch.float64)
    for hook in ("blocks.1.hook_resid_pre", "blocks.0.hook_mlp_out"):
        sae = tiny_sae(hook, d_sae=12, k=4, dtype="float64")
        lens = feature_logit_lens(model, sae, k=4)
        assert torch.equal(
            output_scores(model, sae, lens, prompt=PROMPT, progress=False),
            output_scores_naive(model, sae, lens, prompt=PROMPT, progress=False),
        )
    with pytest.raises(ValueError, match="method='cached' needs"):
        output_scores(model, sae, lens, prompt=PROMPT, method="cached", progress=False)
    with pytest.raises(ValueError, match="method must be one of"):
        output_scores(model, sae, lens, prompt=PROMPT, method="fast", progress=False)


def test_default_prompt_is_the_shared_neutral_prompt(tiny):
    """No prompt given: the scores are those on workbench.prompts.sae_output_score_prompt()."""
    from architectures import with_tokenizer

    from workbench.prompts import sae_output_score_prompt
    from workbench.tokens import encode

    model = with_tokenizer(tiny)
    sae = tiny_sae("blocks.1.hook_resid_post", d_sae=12, k=4)
    lens = feature_logit_lens(model, sae, k=4)
    ids = torch.tensor(encode(model, sae_output_score_prompt()))
    assert torch.equal(
        output_scores(model, sae, lens, progress=False), output_scores(model, sae, lens, prompt=ids, progress=False)
    )


# ----------------------------------------------------------------------------- top examples and input scores


def brute_force_top(model, sae, tokens, k, skip, example_len, layer):
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.hook_resid_post")
    f = sae.encode(cache[f"blocks.{layer}.hook_resid_post"]).clone()
    f[:, :skip] = 0
    n, T, d_sae = f.shape
    nb = T // example_len
    ex = f.view(n, nb, example_len, d_sae)
    vals, arg = ex.max(2)  # [n, nb, d_sae]
    vals = vals.reshape(n * nb, d_sae).T
    pos = (arg + torch.arange(nb)[None, :, None] * example_len).reshape(n * nb, d_sae).T
    return f, vals, pos


def test_top_examples_equal_brute_force_and_do_not_depend_on_batching(tiny):
    sae = tiny_sae("blocks.1.hook_resid_post", k=10)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (11, 16), generator=g)
    k = 7
    a = collect_top_examples(tiny, sae, tokens, k=k, example_len=8, batch_size=3, progress=False, window=(3, 2))
    b = collect_top_examples(tiny, sae, tokens, k=k, example_len=8, batch_size=11, progress=False, window=(3, 2))
    f, vals, _ = brute_force_top(tiny, sae, tokens, k, 1, 8, 1)
    ref = vals.topk(k, dim=1)
    torch.testing.assert_close(a.values, ref.values.clamp_min(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.values, b.values)
    assert torch.equal(a.example, b.example) and torch.equal(a.position, b.position)
    # example ids, positions and tokens agree with brute force where values are distinct and positive
    for i in range(sae.cfg.d_sae):
        for j in range(k):
            if a.values[i, j] <= 0:
                assert a.example[i, j] == -1 and a.token[i, j] == -1
                continue
            e = int(a.example[i, j])
            assert vals[i, e].item() == pytest.approx(a.values[i, j].item(), abs=1e-5)
            row, p = e // 2, int(a.position[i, j])
            assert a.row[i, j] == row and a.token[i, j] == tokens[row, p]
            assert f[row, p, i].item() == pytest.approx(a.values[i, j].item(), abs=1e-5)
            # window: 3 before, 2 after, NaN outside the row
            for o, col in zip(range(-3, 3), range(6)):
                q = p + o
                w = a.window[i, j, col]
                if 0 <= q < 16:
                    assert w.item() == pytest.approx(f[row, q, i].item(), abs=1e-5)
                else:
                    assert torch.isnan(w)
    # firing statistics over positions >= skip
    fired = (f[:, 1:] > 0).sum((0, 1))
    assert torch.equal(a.fire_count, fired) and a.n_tokens == 11 * 15
    assert torch.equal(a.hist_counts.sum(1), fired)


def test_input_scores_from_collected_examples_by_hand(tiny):
    sae = tiny_sae("blocks.1.hook_resid_post", k=10)
    tokens = torch.randint(0, 50, (12, 16), generator=torch.Generator().manual_seed(1))
    ex = collect_top_examples(tiny, sae, tokens, k=20, progress=False)
    lens = feature_logit_lens(tiny, sae, k=5)
    got = input_scores_from_examples(ex, lens, n_examples=20, min_examples=3)
    for i in range(sae.cfg.d_sae):
        toks = [int(t) for t, v in zip(ex.token[i], ex.values[i]) if v > 0]
        if len(toks) < 3:
            assert math.isnan(got[i])
        else:
            expected = sum(t in set(lens.top_tokens[i].tolist()) for t in toks) / len(toks)
            assert got[i].item() == pytest.approx(expected)


def test_top_examples_round_trip_and_bad_input(tiny, tmp_path):
    sae = tiny_sae("blocks.1.hook_resid_post")
    tokens = torch.randint(0, 50, (4, 8))
    ex = collect_top_examples(tiny, sae, tokens, k=3, progress=False)
    back = TopExamples.load(ex.save(tmp_path / "ex"))
    assert torch.equal(back.values, ex.values) and torch.equal(back.tokens, ex.tokens) and back.n_tokens == ex.n_tokens
    assert torch.isnan(ex.window).any()  # outside the rows and empty slots
    assert torch.equal(torch.isnan(back.window), torch.isnan(ex.window))
    finite = ~torch.isnan(ex.window)
    torch.testing.assert_close(back.window[finite], ex.window[finite].half().float())
    with pytest.raises(ValueError, match="divisor"):
        collect_top_examples(tiny, sae, tokens, example_len=3, progress=False)
    # our own check, below the signature's runtime type check (jaxtyping's hook in the tests) that fires first
    with pytest.raises(ValueError, match=r"integer tensor"):
        inspect.unwrap(collect_top_examples)(tiny, sae, tokens.float(), progress=False)


def test_select_features_filters_and_sorts():
    from workbench.models import tiny_model

    model = tiny_model(n_layers=3)
    sae = tiny_sae("blocks.1.hook_resid_post")
    lens = feature_logit_lens(model, sae, k=5)
    out = output_scores(model, sae, lens, prompt=PROMPT, progress=False)
    table = score_table(model, sae, lens=lens, output=out)
    thr = float(out.median())
    chosen = select_features(sae, model=model, scores=table, min_output_score=thr)
    assert set(chosen["feature"]) == {i for i in range(sae.cfg.d_sae) if out[i] >= thr}
    assert list(chosen["output_score"]) == sorted(chosen["output_score"], reverse=True)
    assert len(chosen.iloc[0]["top_token_ids"]) == 5
    assert len(select_features(sae, model=model, scores=table, top_n=3)) == 3
    with pytest.raises(ValueError, match="min_output_score"):
        select_features(sae, model=model, scores=table, min_output_score=2.0)


def test_lens_for_a_subset_of_features(tiny):
    sae = tiny_sae("blocks.1.hook_resid_post")
    full = feature_logit_lens(tiny, sae, k=5)
    part = feature_logit_lens(tiny, sae, k=5, features=[3, 10])
    assert torch.equal(part.top_tokens[[3, 10]], full.top_tokens[[3, 10]])
    assert (part.top_tokens[0] == -1).all() and torch.isnan(part.top_probs[0]).all()
    # features without a lens get no input score and cannot be output-scored
    s = input_scores(full.top_tokens[:, :3], torch.ones(48, 3, dtype=torch.bool), part.top_tokens, min_examples=1)
    assert s[3] == 1.0 and torch.isnan(s[0])
    with pytest.raises(ValueError, match="not computed for features \\[0"):
        output_scores(tiny, sae, part, [0, 3], prompt=PROMPT, progress=False)


def test_feature_lens_round_trip_keeps_uncomputed_rows(tiny, tmp_path):
    sae = tiny_sae("blocks.1.hook_resid_post")
    part = feature_logit_lens(tiny, sae, k=5, features=[3, 10])
    back = FeatureLens.load(part.save(tmp_path / "lens"))
    for name in ("top_tokens", "top_probs", "top_logits", "bottom_tokens", "bottom_logits"):
        torch.testing.assert_close(getattr(back, name), getattr(part, name), equal_nan=True)


def test_logit_lens_old_name_is_a_deprecated_alias():
    import workbench.sae.feature_lens as fl

    with pytest.warns(DeprecationWarning, match="FeatureLens"):
        assert fl.LogitLens is FeatureLens
