"""AtP against TransformerLens' own backward hooks; RelP: same outputs, conservation, faithfulness plumbing."""

import pytest
import torch

from workbench import HookRegistry
from workbench.models import tiny_model
from workbench.patching.attribution import RelPRules, attribution_patch, install_relp_rules, relp_gradients
from workbench.patching.faithfulness import measure_faithfulness, pearson, scatter_figure
from workbench.patching.tasks import make_metric, random_task

SITES = {
    "resid_pre": "hook_resid_pre",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "heads_by_pos": "attn.hook_z",
}


def _tl_atp(model, task, metric):
    """Reference AtP from TransformerLens' caches and backward hooks."""
    _, clean = model.run_with_cache(task.clean)
    grads = {}

    def save(g, hook):
        grads[hook.name] = g.detach().clone()

    names = [f"blocks.{L}.{h}" for L in range(model.cfg.n_layers) for h in SITES.values()]
    model.requires_grad_(True)
    try:
        with torch.enable_grad(), model.hooks(bwd_hooks=[(n, save) for n in names]):
            logits, corr = model.run_with_cache(task.corrupted)
            metric(logits).backward()
    finally:
        model.requires_grad_(False)
        model.zero_grad(set_to_none=True)
    out = {}
    for stream, h in SITES.items():
        rows = [
            ((clean[f"blocks.{L}.{h}"] - corr[f"blocks.{L}.{h}"]) * grads[f"blocks.{L}.{h}"]).sum(-1).sum(0)
            for L in range(model.cfg.n_layers)
        ]
        out[stream] = torch.stack(rows)
    return out


@pytest.mark.parametrize("gated", [True, False], ids=["llama-shaped", "gpt2-shaped"])
def test_atp_equals_transformer_lens_gradients(gated):
    model = tiny_model(n_layers=2, gated=gated)
    task = random_task(model.cfg.d_vocab, n=3, seq_len=5, seed=3)
    metric = make_metric(model, task)
    ours = attribution_patch(model, task.clean, task.corrupted, metric, list(SITES) + ["heads_all_pos"])
    ref = _tl_atp(model, task, metric)
    for stream in SITES:
        torch.testing.assert_close(ours[stream], ref[stream], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["heads_all_pos"], ref["heads_by_pos"].sum(1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gated", [True, False], ids=["llama-shaped", "gpt2-shaped"])
def test_rewritten_forward_gives_exactly_the_normal_outputs(gated):
    model = tiny_model(n_layers=2, gated=gated)
    toks = torch.randint(0, model.cfg.d_vocab, (2, 6))
    reg = HookRegistry(model)
    names = install_relp_rules(reg, RelPRules(attention=True))
    assert (
        any(".mlp." in n for n in names) and any("pattern" in n for n in names) and any("ln_final" in n for n in names)
    )
    with torch.enable_grad():
        rewritten = reg.run(toks, need_logits=True)
    assert torch.equal(rewritten, model(toks))


def _bias_free(gated):
    model = tiny_model(n_layers=2, gated=gated)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[-1].startswith("b"):
                p.zero_()
    return model


class _TargetLogit:
    def __init__(self, token):
        self.token = token

    def __call__(self, logits):
        return logits[:, -1, self.token].sum()


@pytest.mark.parametrize("gated", [True, False], ids=["llama-shaped", "gpt2-shaped"])
def test_relevance_is_conserved_layer_by_layer_without_biases(gated):
    """With every rule (LN, identity, half, attention) and no biases, the rewritten network is
    positively homogeneous in each layer's input, so Σ_{pos,d} a·∂'M/∂a is the same at every layer
    and equals the output M. Without the attention rule (softmax kept) or with plain gradients it
    is not — the check can fail."""
    model = _bias_free(gated)
    toks = torch.randint(0, model.cfg.d_vocab, (2, 6), generator=torch.Generator().manual_seed(4))
    sites = ["hook_embed" if gated else "resid_pre.0", "resid_pre.1", "resid_mid.1", "resid_post.1"]
    if gated:
        sites = sites[1:]
        sites.insert(0, "resid_pre.0")
    out, vals, grads = relp_gradients(model, toks, _TargetLogit(7), sites, RelPRules(attention=True))
    for s in sites:
        assert float((vals[s] * grads[s]).sum()) == pytest.approx(float(out), rel=1e-4, abs=1e-5), s
    _, vals, grads = relp_gradients(model, toks, _TargetLogit(7), sites, RelPRules.none())
    assert abs(float((vals["resid_pre.0"] * grads["resid_pre.0"]).sum()) - float(out)) > 1e-3
    _, vals, grads = relp_gradients(model, toks, _TargetLogit(7), sites, RelPRules())
    assert abs(float((vals["resid_pre.0"] * grads["resid_pre.0"]).sum()) - float(out)) > 1e-3


def test_half_rule_splits_relevance_equally_between_gate_and_linear_input():
    model = _bias_free(True)
    toks = torch.randint(0, model.cfg.d_vocab, (1, 5))
    sites = ["blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_pre_linear", "blocks.0.mlp.hook_post"]
    _, vals, grads = relp_gradients(model, toks, _TargetLogit(3), sites, RelPRules(attention=True))
    r_pre, r_lin, r_post = (vals[s] * grads[s] for s in sites)
    torch.testing.assert_close(r_pre, r_lin, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(r_pre + r_lin, r_post, rtol=1e-4, atol=1e-6)


def test_relp_without_rules_is_atp_and_rules_change_the_estimate(tiny):
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=5)
    metric = make_metric(tiny, task)
    a = attribution_patch(tiny, task.clean, task.corrupted, metric, ["resid_pre"], rules=RelPRules.none())
    r = attribution_patch(tiny, task.clean, task.corrupted, metric, ["resid_pre"], rules=RelPRules())
    assert not torch.allclose(a["resid_pre"], r["resid_pre"], atol=1e-4)
    assert not any(h.fwd_hooks for h in tiny.hook_dict.values())


def test_faithfulness_pipeline_and_pearson(tiny):
    assert pearson(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 4, 6])) == pytest.approx(1.0)
    assert pearson(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == pytest.approx(-1.0)
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=4)
    metric = make_metric(tiny, task)
    res = measure_faithfulness(tiny, task, metric, ["resid_pre", "mlp_out"], progress=False)
    corr = res.correlations
    assert set(corr) == {"atp", "relp", "relp_attn"} and set(corr["atp"]) == {"resid_pre", "mlp_out"}
    # the resid_pre grid at layer 0 is exact for any first-order method only at the last layer; sanity: r is finite
    assert all(-1 <= v <= 1 for by in corr.values() for v in by.values())
    assert len(scatter_figure(res, "mlp_out").data) == 4
    assert list(res.to_frame().columns) == ["task", "component", "method", "pearson_r"]
