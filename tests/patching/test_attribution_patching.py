"""AtP against plain gradients taken with TransformerLens' own hooks; RelP: the rewritten forward gives
the normal outputs, relevance is conserved, and configs the rules do not cover are refused. On tiny
models of six families (tests/architectures.py)."""

import warnings

import pytest
import torch
from architectures import FAMILIES, family_model, random_tokens
from transformer_lens import HookedTransformer, HookedTransformerConfig

from workbench import HookRegistry
from workbench.models import tiny_model
from workbench.patching.attribution import RelPRules, attribution_patch, install_relp_rules, relp_gradients
from workbench.patching.faithfulness import measure_faithfulness, pearson
from workbench.patching.rules import relp_blocker, rewrite_output
from workbench.patching.tasks import make_metric, random_task

SITES = {
    "resid_pre": "hook_resid_pre",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "heads_by_pos": "attn.hook_z",
}


def _tl_atp(model, task, metric):
    """Reference AtP: (clean − corrupted) × ∂M/∂a, with activations from TransformerLens' caches and
    gradients from its backward hooks."""
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


@pytest.mark.parametrize("family", FAMILIES)
def test_atp_equals_transformer_lens_gradients_on_every_family(family):
    model = family_model(family)
    task = random_task(model.cfg.d_vocab, n=3, seq_len=8, seed=3)
    metric = make_metric(model, task)
    ours = attribution_patch(model, task.clean, task.corrupted, metric, [*SITES, "heads_all_pos"])
    ref = _tl_atp(model, task, metric)
    for stream in SITES:
        torch.testing.assert_close(ours[stream], ref[stream], rtol=1e-5, atol=1e-6, msg=f"{family} {stream}")
        assert float(ref[stream].abs().max()) > 1e-4
    torch.testing.assert_close(ours["heads_all_pos"], ref["heads_by_pos"].sum(1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_rewritten_forward_gives_the_normal_outputs_on_every_family(family):
    """Every rule on (LN, identity, half, attention): logits and metric equal the plain forward's."""
    model = family_model(family)
    toks = random_tokens(model, batch=2, seq_len=8)
    reg = HookRegistry(model)
    names = install_relp_rules(reg, RelPRules(attention=True))
    n_norms = sum(1 for h in model.hook_dict if h.endswith("hook_scale"))
    assert sum(".norm." in n for n in names) == n_norms  # every norm, Gemma-2's post-norms included
    assert any(".mlp." in n for n in names) and any("pattern" in n for n in names)
    with torch.enable_grad():
        rewritten = rewrite_output(reg, reg.run(toks, need_logits=True))
    torch.testing.assert_close(rewritten, model(toks), rtol=0, atol=1e-6)
    task = random_task(model.cfg.d_vocab, n=2, seq_len=8, seed=5)
    metric = make_metric(model, task)
    m, _, _ = relp_gradients(model, task.corrupted, metric, ["resid_pre.0"], RelPRules(attention=True))
    assert float(m) == pytest.approx(float(metric(model(task.corrupted))), abs=1e-6)
    assert not any(h.fwd_hooks for h in model.hook_dict.values())


class _TargetLogit:
    def __init__(self, token):
        self.token = token

    def __call__(self, logits):
        return logits[:, -1, self.token].sum()


def _bias_free(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[-1].lstrip("_").startswith("b"):
                p.zero_()
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_relevance_is_conserved_layer_by_layer_without_biases(family):
    """With every rule (LN incl. post-norms, identity incl. the output soft-cap, half, attention) and
    no biases, the rewritten network is positively homogeneous in each layer's input, so
    Σ_{pos,d} a·∂'M/∂a is the same at every layer and equals the output M. It fails as soon as one
    non-linearity of the config is left out: with plain gradients, or without the attention rule."""
    model = _bias_free(family_model(family))
    n = model.cfg.n_layers
    toks = random_tokens(model, batch=2, seq_len=8, seed=4)
    sites = ["resid_pre.0", *(f"resid_pre.{L}" for L in range(1, n)), f"resid_post.{n - 1}"]
    out, vals, grads = relp_gradients(model, toks, _TargetLogit(7), sites, RelPRules(attention=True))
    for s in sites:
        assert float((vals[s] * grads[s]).sum()) == pytest.approx(float(out), rel=1e-4, abs=1e-5), (family, s)
    for rules in (RelPRules.none(), RelPRules()):
        _, vals, grads = relp_gradients(model, toks, _TargetLogit(7), sites, rules)
        assert abs(float((vals["resid_pre.0"] * grads["resid_pre.0"]).sum()) - float(out)) > 1e-3, rules.label


def test_half_rule_splits_relevance_equally_between_gate_and_linear_input():
    model = _bias_free(tiny_model(n_layers=2, gated=True))
    toks = torch.randint(0, model.cfg.d_vocab, (1, 5))
    sites = ["blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_pre_linear", "blocks.0.mlp.hook_post"]
    _, vals, grads = relp_gradients(model, toks, _TargetLogit(3), sites, RelPRules(attention=True))
    r_pre, r_lin, r_post = (vals[s] * grads[s] for s in sites)
    torch.testing.assert_close(r_pre, r_lin, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(r_pre + r_lin, r_post, rtol=1e-4, atol=1e-6)


def _model(**over):
    cfg = dict(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, d_vocab=20, n_ctx=16, act_fn="gelu", device="cpu")
    cfg.update(over)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HookedTransformer(HookedTransformerConfig(**cfg)).eval().requires_grad_(False)


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"act_fn": "solu_ln"}, "act_fn"),
        ({"num_experts": 2, "experts_per_token": 1, "gated_mlp": True, "act_fn": "silu"}, "num_experts"),
        ({"clip_qkv": 0.5}, "clip_qkv"),
    ],
)
def test_relp_refuses_a_config_it_does_not_cover_naming_the_field(over, field):
    model = _model(**over)
    assert field in relp_blocker(model, RelPRules())
    task = random_task(20, n=2, seq_len=4)
    metric = make_metric(model, task)
    with pytest.raises(ValueError, match=field):
        attribution_patch(model, task.clean, task.corrupted, metric, ["resid_pre"], rules=RelPRules())
    with pytest.raises(ValueError, match=field):
        install_relp_rules(HookRegistry(model), RelPRules())
    with pytest.raises(ValueError, match=field):
        measure_faithfulness(model, task, metric, ["resid_pre"], progress=False)
    assert not any(h.fwd_hooks for h in model.hook_dict.values())
    # plain gradients (AtP) need no rule: they still run
    assert attribution_patch(model, task.clean, task.corrupted, metric, ["resid_pre"])["resid_pre"].shape == (1, 4)


def test_attn_only_and_norm_free_models_need_no_mlp_or_norm_rewrite():
    model = _model(attn_only=True, normalization_type=None)
    assert relp_blocker(model, RelPRules()) is None
    reg = HookRegistry(model)
    assert install_relp_rules(reg, RelPRules()) == []
    toks = torch.randint(0, 20, (1, 4))
    torch.testing.assert_close(reg.run(toks, need_logits=True), model(toks), rtol=0, atol=0)


def test_default_is_plain_gradients_and_rules_change_the_estimate(tiny):
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=5)
    metric = make_metric(tiny, task)
    default = attribution_patch(tiny, task.clean, task.corrupted, metric, ["resid_pre"])
    a = attribution_patch(tiny, task.clean, task.corrupted, metric, ["resid_pre"], rules=RelPRules.none())
    r = attribution_patch(tiny, task.clean, task.corrupted, metric, ["resid_pre"], rules=RelPRules())
    assert torch.equal(default["resid_pre"], a["resid_pre"])  # the docstring's default: AtP
    assert not torch.allclose(a["resid_pre"], r["resid_pre"], atol=1e-4)
    assert not any(h.fwd_hooks for h in tiny.hook_dict.values())
    with pytest.raises(ValueError, match="non-empty list"):
        attribution_patch(tiny, task.clean, task.corrupted, metric, "resid_pre")
    with pytest.raises(TypeError, match="RelPRules"):
        attribution_patch(tiny, task.clean, task.corrupted, metric, ["resid_pre"], rules="relp")
    with pytest.raises(TypeError, match=r"RelPRules\.norm|parameter 'norm'"):  # ours, or jaxtyping's runtime check
        RelPRules(norm=1)


def test_faithfulness_pipeline_and_pearson(tiny):
    assert pearson(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 4, 6])) == pytest.approx(1.0)
    assert pearson(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == pytest.approx(-1.0)
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=4)
    metric = make_metric(tiny, task)
    res = measure_faithfulness(tiny, task, metric, ["resid_pre", "mlp_out"], progress=False)
    corr = res.correlations
    assert set(corr) == {"atp", "relp", "relp_attn"} and set(corr["atp"]) == {"resid_pre", "mlp_out"}
    assert all(-1 <= v <= 1 for by in corr.values() for v in by.values())
    assert list(res.to_frame().columns) == ["task", "component", "method", "pearson_r"]
    with pytest.raises(ValueError, match="unknown methods"):
        measure_faithfulness(tiny, task, metric, ["resid_pre"], ["magic"], progress=False)
