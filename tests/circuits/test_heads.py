"""Head scores against TransformerLens' ``head_detector.detect_head`` (error_measure="mul", which is
``rows="all"`` here) and against a brute-force induction score on repeated random tokens; patterns
against TransformerLens' cache."""

import pytest
import torch
from architectures import family_model, random_tokens
from transformer_lens.head_detector import detect_head

from workbench.circuits.heads import (
    HEAD_KINDS,
    attention_patterns,
    detection_pattern,
    head_scores,
    induction_scores,
    repeated_random_tokens,
)

TL_NAMES = {
    "previous_token": "previous_token_head",
    "duplicate_token": "duplicate_token_head",
    "induction": "induction_head",
}


def hooks_left(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def _tl_scores(model, prompts: torch.Tensor, kind: str, **kw) -> torch.Tensor:
    """detect_head on each prompt (a string key per prompt; to_tokens returns its ids: the tiny
    models have no tokenizer), averaged as detect_head averages a list of prompts."""
    by_key = {f"p{i}": row[None] for i, row in enumerate(prompts)}
    # detect_head tokenises the whole list once before scoring each prompt on its own
    model.to_tokens = lambda seq, **_: by_key[seq[0] if isinstance(seq, list) else seq]
    try:
        return detect_head(model, list(by_key), TL_NAMES[kind], **kw)
    finally:
        del model.to_tokens


def _tokens_with_repeats(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    half = torch.randint(0, model.cfg.d_vocab, (3, 6), generator=g)
    return torch.cat([half, half[:, :4], torch.randint(0, model.cfg.d_vocab, (3, 2), generator=g)], 1)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2"])
@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_scores_equal_detect_head(family, kind):
    model = family_model(family)
    tokens = _tokens_with_repeats(model)
    ours = head_scores(model, tokens, [kind], rows="all").scores[kind]
    ref = _tl_scores(model, tokens, kind)
    assert torch.allclose(ours, ref.to(ours.dtype), atol=1e-5, rtol=0)
    assert hooks_left(model) == 0


@pytest.mark.parametrize("flags", [dict(exclude_bos=True), dict(exclude_current_token=True)])
def test_exclusions_equal_detect_head(flags):
    model = family_model("llama")
    tokens = _tokens_with_repeats(model, seed=1)
    ours = head_scores(
        model,
        tokens,
        HEAD_KINDS,
        rows="all",
        exclude_first=flags.get("exclude_bos", False),
        exclude_current=flags.get("exclude_current_token", False),
    )
    for kind in HEAD_KINDS:
        ref = _tl_scores(model, tokens, kind, **flags)
        assert torch.allclose(ours.scores[kind], ref.to(torch.float32), atol=1e-5, rtol=0), kind


def test_detection_patterns_equal_transformer_lens_builders():
    from transformer_lens import head_detector as hd

    model = family_model("gpt2")
    tokens = _tokens_with_repeats(model, seed=2)
    builders = {
        "previous_token": hd.get_previous_token_head_detection_pattern,
        "duplicate_token": hd.get_duplicate_token_head_detection_pattern,
        "induction": hd.get_induction_head_detection_pattern,
    }
    for kind, build in builders.items():
        ours = detection_pattern(tokens, kind)
        for b in range(tokens.shape[0]):
            assert torch.equal(ours[b].float(), build(tokens[b : b + 1]).float()), kind


def test_defined_induction_score_is_the_offset_diagonal_on_repeated_tokens():
    """The standard induction score: mean attention from position n+i to position i+1 over the second half."""
    model = family_model("llama", n_layers=2)
    n = 10
    rep = repeated_random_tokens(model, 4, n, seed=3)
    assert rep.shape == (4, 2 * n) and torch.equal(rep[:, :n], rep[:, n:])
    # ids drawn with replacement may repeat inside a half; the brute force below assumes they do not
    tokens = torch.stack([torch.cat([torch.randperm(model.cfg.d_vocab)[:n]] * 2) for _ in range(4)])
    ours = head_scores(model, tokens, ["induction", "previous_token"]).scores
    _, cache = model.run_with_cache(tokens)
    for L in range(model.cfg.n_layers):
        pat = cache[f"blocks.{L}.attn.hook_pattern"]  # [b, h, q, k]
        q = torch.arange(n, 2 * n)
        ref = pat[:, :, q, q - n + 1].mean(-1).mean(0)
        assert torch.allclose(ours["induction"][L], ref, atol=1e-6)
        prev = pat[:, :, torch.arange(1, 2 * n), torch.arange(0, 2 * n - 1)].mean(-1).mean(0)
        assert torch.allclose(ours["previous_token"][L], prev, atol=1e-6)


def test_patterns_equal_the_cache_and_validation():
    model = family_model("mistral")
    tokens = random_tokens(model, batch=2)
    p = attention_patterns(model, tokens, [(1, 2), (0, 0)])
    _, cache = model.run_with_cache(tokens)
    assert torch.allclose(p.of(1, 2), cache["blocks.1.attn.hook_pattern"][:, 2])
    assert torch.allclose(p.patterns[:, 1], cache["blocks.0.attn.hook_pattern"][:, 0])
    assert len(p.strings[0]) == tokens.shape[1]
    for bad, err in (
        ([(2, 0)], ValueError),
        ([(0, 4)], ValueError),
        ([(True, 0)], TypeError),
        ([(0, 0), (0, 0)], ValueError),
        ([], ValueError),
        ("L0H0", TypeError),
    ):
        with pytest.raises(err):
            attention_patterns(model, tokens, bad)
    with pytest.raises(KeyError):
        p.of(1, 1)
    with pytest.raises(ValueError, match="kind"):
        head_scores(model, tokens, ["nope"])
    with pytest.raises(ValueError, match="n_ctx"):
        repeated_random_tokens(model, 2, 40)
    assert hooks_left(model) == 0


def test_induction_scores_top_and_above():
    model = family_model("gpt2")
    s = induction_scores(model, n_prompts=2, half_len=8)
    assert set(s.scores) == set(HEAD_KINDS) and s.seq_len == 16
    top = s.top("induction", 3)
    flat = s.scores["induction"].flatten().sort(descending=True).values[:3]
    assert [t[2] for t in top] == pytest.approx(flat.tolist())
    thr = (top[1][2] + top[2][2]) / 2
    assert [h[:2] for h in s.above("induction", thr)] == [t[:2] for t in top[:2]]
