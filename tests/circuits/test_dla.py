"""Direct logit attribution against TransformerLens' ActivationCache (stack_head_results,
decompose_resid, accumulated_resid, logit_attrs) on tiny models of several families.

TransformerLens' ``logit_attrs`` projects onto ``W_U`` columns and divides by the cached final scale;
it leaves out the final norm's weight, which is only right once that weight is folded into ``W_U``
(``fold_ln``). The attributions are therefore compared on folded copies; on unfolded models the
per-layer attributions must equal those of the folded copy (folding changes weights, not the model),
and the components must add up to the actual logit difference."""

import inspect

import pytest
import torch
from architectures import family_model, random_tokens

from workbench.circuits import decompose_residual, dla, dla_blocker
from workbench.circuits import dla as dla_fn
from workbench.patching.tasks import random_task

FAMILIES = ("gpt2", "llama", "neox", "qwen2", "mistral")
TOL = 1e-5


def hooks_left(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def folded(name: str, **kw):
    m = family_model(name, **kw)
    m.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=False)
    return m


def _answers(model, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, model.cfg.d_vocab, (batch,), generator=g)
    b = (a + 1 + torch.randint(0, model.cfg.d_vocab - 1, (batch,), generator=g)) % model.cfg.d_vocab
    return a, b


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("fold", [False, True], ids=["unfolded", "folded"])
def test_decomposition_equals_transformer_lens_stacks(family, fold):
    model = folded(family) if fold else family_model(family)
    tokens = random_tokens(model, batch=3)
    d = decompose_residual(model, tokens, positions=-1)
    _, cache = model.run_with_cache(tokens)
    heads = cache.stack_head_results(layer=-1, pos_slice=-1)
    assert torch.allclose(d.vectors[d.index("head")], heads, atol=TOL, rtol=0)
    labels, layers = d.by_layer()
    ref, ref_labels = cache.decompose_resid(pos_slice=-1, return_labels=True)
    assert labels == ref_labels
    assert torch.allclose(layers, ref, atol=TOL, rtol=0)
    assert torch.allclose(d.resid, cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][:, -1], atol=TOL)
    assert d.reconstruction_error < TOL
    assert hooks_left(model) == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_attributions_equal_logit_attrs_on_folded_models(family):
    model = folded(family)
    tokens = random_tokens(model, batch=4, seed=1)
    a, b = _answers(model, 4)
    r = dla(model, tokens, a, b)
    _, cache = model.run_with_cache(tokens)
    ref_heads = cache.logit_attrs(cache.stack_head_results(layer=-1, pos_slice=-1), a, b, pos_slice=-1)
    heads = [i for i, c in enumerate(r.components) if c.kind == "head"]
    assert torch.allclose(r.values[heads], ref_heads, atol=TOL, rtol=0)
    grid = r.head_grid()
    assert torch.allclose(grid.flatten(), ref_heads.mean(1), atol=TOL, rtol=0)
    ref_layers = cache.logit_attrs(cache.decompose_resid(pos_slice=-1), a, b, pos_slice=-1)
    lv = r.layer_values()
    ref_attn = ref_layers[[i for i, n in enumerate(cache.decompose_resid(return_labels=True)[1]) if "attn" in n]]
    assert torch.allclose(lv["attn"], ref_attn.mean(1), atol=TOL, rtol=0)
    # Accumulated residual: TransformerLens' stack with the frozen final scale (logit_attrs), plus the constant.
    acc = cache.accumulated_resid(apply_ln=False, pos_slice=-1)
    ref_acc = cache.logit_attrs(acc, a, b, pos_slice=-1) + r.constant
    assert torch.allclose(r.accumulated, ref_acc, atol=TOL, rtol=0)
    # Single-token logit mode.
    r1 = dla(model, tokens, a)
    ref1 = cache.logit_attrs(cache.stack_head_results(layer=-1, pos_slice=-1), a, pos_slice=-1)
    assert torch.allclose(r1.values[heads], ref1, atol=TOL, rtol=0)
    assert r1.target == "logit"


@pytest.mark.parametrize("family", FAMILIES)
def test_components_add_up_to_the_logit_difference(family):
    model = family_model(family)
    tokens = random_tokens(model, batch=4, seed=2)
    a, b = _answers(model, 4, seed=3)
    r = dla(model, tokens, a, b)
    logits = model(tokens)[:, -1]
    actual = logits[torch.arange(4), a] - logits[torch.arange(4), b]
    assert torch.allclose(r.logit_diff, actual, atol=TOL, rtol=0)
    assert r.sum_error < TOL
    assert torch.allclose(r.accumulated[-1], actual, atol=TOL, rtol=0)
    assert torch.allclose(r.lens[-1], actual, atol=TOL, rtol=0)
    # Folding the norm weights into W_U (and value biases into b_O) leaves every layer's attribution unchanged.
    rf = dla(folded(family), tokens, a, b)
    for k in ("attn", "mlp"):
        assert torch.allclose(r.layer_values()[k], rf.layer_values()[k], atol=TOL, rtol=0)


def test_per_prompt_positions_equal_transformer_lens_at_those_positions():
    model = folded("llama")
    tokens = random_tokens(model, batch=3, seed=4)
    pos = [3, -1, 7]
    a, b = _answers(model, 3, seed=5)
    r = dla(model, tokens, a, b, positions=pos)
    _, cache = model.run_with_cache(tokens)
    rows = torch.arange(3)
    idx = torch.tensor([3, tokens.shape[1] - 1, 7])
    stack = cache.stack_head_results(layer=-1)[:, rows, idx]  # [component, batch, d_model]
    scaled = stack / cache["ln_final.hook_scale"][rows, idx]
    ref = (scaled * (model.W_U[:, a] - model.W_U[:, b]).T).sum(-1)
    heads = [i for i, c in enumerate(r.components) if c.kind == "head"]
    assert torch.allclose(r.values[heads], ref, atol=TOL, rtol=0)


def test_gemma2_and_soft_cap_are_refused_naming_the_config_field():
    model = family_model("gemma2")
    assert "use_normalization_before_and_after" in dla_blocker(model)
    with pytest.raises(ValueError, match="use_normalization_before_and_after"):
        dla(model, random_tokens(model), 1, 2)
    model.cfg.use_normalization_before_and_after = False
    with pytest.raises(ValueError, match="output_logits_soft_cap"):
        decompose_residual(model, random_tokens(model))
    assert hooks_left(model) == 0


def test_arguments_are_validated_before_any_forward():
    dla = inspect.unwrap(dla_fn)  # our checks, below the runtime signature check the tests install
    model = family_model("llama")
    tokens = random_tokens(model, batch=2)
    with pytest.raises(TypeError, match="positions"):
        dla(model, tokens, 1, 2, positions=True)
    with pytest.raises(ValueError, match="outside the sequence"):
        dla(model, tokens, 1, 2, positions=tokens.shape[1])
    with pytest.raises(ValueError, match="one position per prompt"):
        dla(model, tokens, 1, 2, positions=[0, 1, 2])
    with pytest.raises(ValueError, match="vocabulary"):
        dla(model, tokens, model.cfg.d_vocab, 2)
    with pytest.raises(TypeError, match="integer"):
        dla(model, tokens.float(), 1, 2)
    with pytest.raises(TypeError):
        dla(model, tokens, True, 2)
    with pytest.raises(ValueError, match="same correct and wrong"):
        dla(model, tokens, 3, 3)
    assert hooks_left(model) == 0


def test_table_and_top_agree_with_the_values():
    model = family_model("gpt2")
    task = random_task(model.cfg.d_vocab, n=3, seq_len=8)
    from workbench.circuits import dla_task

    r = dla_task(model, task)
    table = r.to_table()
    assert list(table["label"]) == r.labels
    top = r.top(3, kind="head")
    means = {lab: float(v) for lab, v in zip(r.labels, r.mean)}
    heads = [lab for lab, c in zip(r.labels, r.components) if c.kind == "head"]
    best = sorted(heads, key=lambda lab: -abs(means[lab]))[:3]
    assert [t[0] for t in top] == best
    assert r.top(1, kind="head", order="negative")[0][1] == min(means[h] for h in heads)


@pytest.mark.embedded
def test_dla_on_embedded_ioi_equals_transformer_lens(embedded):
    from workbench.circuits import dla_task
    from workbench.patching.tasks import ioi_task

    task = ioi_task(embedded, 4)
    r = dla_task(embedded, task)
    logits, cache = embedded.run_with_cache(task.clean)
    stack = cache.stack_head_results(layer=-1, pos_slice=-1, apply_ln=True)
    u = (embedded.W_U[:, task.correct] - embedded.W_U[:, task.wrong]).T * embedded.ln_final.w
    ref = (stack * u).sum(-1)
    heads = [i for i, c in enumerate(r.components) if c.kind == "head"]
    assert torch.allclose(r.values[heads], ref, atol=1e-4, rtol=0)
    rows = torch.arange(task.n)
    last = logits[:, -1]
    assert torch.allclose(r.logit_diff, last[rows, task.correct] - last[rows, task.wrong], atol=1e-4)
    assert r.sum_error < 1e-4
