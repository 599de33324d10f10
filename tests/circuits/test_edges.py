"""Edge attribution patching against references written here with plain TransformerLens hooks (TL's
own split per-head inputs, ``use_split_qkv_input`` / ``use_hook_mlp_in``): the first-order scores
from TL backward hooks, and brute-force edge activation patching (one corrupted forward per edge,
with only that edge's receiver input restored)."""

import contextlib

import pytest
import torch
from architectures import family_model

from workbench.circuits.edges import METHODS, edge_scores
from workbench.circuits.graph import Graph, split_inputs
from workbench.patching.faithfulness import pearson
from workbench.patching.tasks import make_metric, random_task


def hooks_left(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@contextlib.contextmanager
def split_flags(model):
    """TransformerLens' own per-head input hooks, set by its setters (not workbench's split_inputs)."""
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    try:
        yield
    finally:
        model.set_use_split_qkv_input(False)
        model.set_use_hook_mlp_in(False)


def _receiver_hook(model, r):
    if r.kind == "logits":
        return f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", None
    if r.kind == "mlp":
        return f"blocks.{r.layer}.hook_mlp_in", None
    return f"blocks.{r.layer}.hook_{r.kind}_input", r.head


def _sender_delta(model, cc, xc, s):
    """a_u^clean − a_u^corr ``[n, pos, d_model]`` from TransformerLens caches."""
    if s.kind == "embed":
        return cc["blocks.0.hook_resid_pre"] - xc["blocks.0.hook_resid_pre"]
    if s.kind == "mlp":
        return cc[f"blocks.{s.layer}.hook_mlp_out"] - xc[f"blocks.{s.layer}.hook_mlp_out"]
    name = f"blocks.{s.layer}.attn.hook_z"
    return (cc[name] - xc[name])[:, :, s.head] @ model.blocks[s.layer].attn.W_O[s.head]


class Reference:
    """TL caches (clean, corrupted), TL-backward-hook gradients at every receiver input, and
    brute-force edge patching."""

    def __init__(self, model, task, metric):
        self.model, self.task, self.metric = model, task, metric
        with split_flags(model):
            _, self.cc = model.run_with_cache(task.clean)
            _, self.xc = model.run_with_cache(task.corrupted)
        self.grads = self.gradients()

    def gradients(self, alpha=None, grads=None) -> dict:
        """∂M/∂(receiver input) on the corrupted run, or with the token embedding replaced by
        e_corr + alpha (e_clean − e_corr); given ``grads`` (from relp_gradients), those instead."""
        if grads is not None:
            return grads
        model, out = self.model, {}

        def save(g, hook):
            out[hook.name] = g.detach().clone()

        def mix(e, hook):
            return self.xc["hook_embed"] + alpha * (self.cc["hook_embed"] - self.xc["hook_embed"])

        names = {_receiver_hook(model, r)[0] for r in Graph.of(model).receivers}
        fwd = [] if alpha is None else [("hook_embed", mix)]
        with split_flags(model):
            model.requires_grad_(True)  # backward hooks fire only on tensors that need grad
            try:
                with torch.enable_grad(), model.hooks(fwd_hooks=fwd, bwd_hooks=[(n, save) for n in names]):
                    self.metric(model(self.task.corrupted)).backward()
            finally:
                model.requires_grad_(False)
                model.zero_grad(set_to_none=True)
        return out

    def first_order(self, s, r, grads=None) -> float:
        name, head = _receiver_hook(self.model, r)
        grads = self.grads if grads is None else grads
        g = grads[name] if head is None else grads[name][:, :, head]
        return float((_sender_delta(self.model, self.cc, self.xc, s) * g).sum())

    def patch(self, s, r) -> float:
        name, head = _receiver_hook(self.model, r)
        delta = _sender_delta(self.model, self.cc, self.xc, s)

        def add(x, hook):
            x = x.clone()
            if head is None:
                x += delta
            else:
                x[:, :, head] += delta
            return x

        with split_flags(self.model), torch.no_grad(), self.model.hooks(fwd_hooks=[(name, add)]):
            return self.metric(self.model(self.task.corrupted)).item()


def _setup(family, seed=0, n_layers=2):
    model = family_model(family, n_layers=n_layers)
    task = random_task(model.cfg.d_vocab, n=3, seq_len=7, seed=seed)
    return model, task, make_metric(model, task)


@pytest.mark.parametrize("family", ["gpt2", "llama", "neox", "qwen2"])
def test_eap_equals_first_order_from_transformer_lens_backward_hooks(family):
    model, task, metric = _setup(family)
    res = edge_scores(model, task.clean, task.corrupted, metric, "eap")
    ref = Reference(model, task, metric)
    g = res.graph
    for u, v in g.edge_list():
        assert float(res.scores[u, v]) == pytest.approx(
            ref.first_order(g.senders[u], g.receivers[v]), abs=1e-5, rel=1e-4
        )
    assert torch.isnan(res.scores[~g.edges]).all()
    assert not model.cfg.use_split_qkv_input and not model.cfg.use_hook_mlp_in
    assert hooks_left(model) == 0


def test_brute_force_edge_patching_correlates_with_every_method():
    model, task, metric = _setup("llama", seed=1)
    ref = Reference(model, task, metric)
    graph = Graph.of(model)
    exact = torch.tensor([ref.patch(graph.senders[u], graph.receivers[v]) for u, v in graph.edge_list()])
    for method in METHODS:
        est = edge_scores(model, task.clean, task.corrupted, metric, method, graph=graph).values()
        # first-order estimates on a random model: they must track the exact effects, not equal them
        assert pearson(est, exact) > 0.5, method


def test_eap_ig_equals_the_mean_gradient_along_the_embedding_path():
    model, task, metric = _setup("gpt2", seed=2)
    res = edge_scores(model, task.clean, task.corrupted, metric, "eap-ig", steps=3)
    ref = Reference(model, task, metric)
    per_step = [ref.gradients(alpha=(k - 0.5) / 3) for k in (1, 2, 3)]
    mean = {n: sum(g[n] for g in per_step) / 3 for n in per_step[0]}
    g = res.graph
    for u, v in g.edge_list():
        want = ref.first_order(g.senders[u], g.receivers[v], mean)
        assert float(res.scores[u, v]) == pytest.approx(want, abs=1e-5, rel=1e-4)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_eap_relp_uses_the_relevance_coefficients_of_relp_gradients(family):
    from workbench.patching.attribution import relp_gradients
    from workbench.patching.rules import RelPRules

    model, task, metric = _setup(family, seed=3)
    res = edge_scores(model, task.clean, task.corrupted, metric, "eap-relp")
    ref = Reference(model, task, metric)
    g = res.graph
    with split_inputs(model):
        _, _, grads = relp_gradients(model, task.corrupted, metric, list(g.sites), RelPRules())
    names = {s: _receiver_hook(model, r)[0] for s, cols in zip(g.sites, g.site_cols) for r in [g.receivers[cols[0]]]}
    tl_named = {names[s]: v for s, v in grads.items()}
    plain = edge_scores(model, task.clean, task.corrupted, metric, "eap")
    for u, v in g.edge_list():
        want = ref.first_order(g.senders[u], g.receivers[v], tl_named)
        assert float(res.scores[u, v]) == pytest.approx(want, abs=1e-5, rel=1e-4)
    assert not torch.allclose(res.values(), plain.values())  # the rules do change the coefficients


def test_top_k_and_validation():
    model, task, metric = _setup("llama")
    res = edge_scores(model, task.clean, task.corrupted, metric)
    k = 5
    mask = res.top(k)
    assert int(mask.sum()) == k and not bool((mask & ~res.graph.edges).any())
    kept = res.scores[mask].abs()
    dropped = res.scores[res.graph.edges & ~mask].abs()
    assert float(kept.min()) >= float(dropped.max())
    assert [e[2] for e in res.ranked(k)] == sorted(res.scores[mask].tolist(), key=lambda x: -abs(x))
    assert int(res.top(0).sum()) == 0 and int(res.top(res.graph.n_edges).sum()) == res.graph.n_edges
    with pytest.raises(ValueError):
        res.top(res.graph.n_edges + 1)
    with pytest.raises(ValueError, match="method"):
        edge_scores(model, task.clean, task.corrupted, metric, "acdc")
    with pytest.raises(TypeError):
        edge_scores(model, task.clean, task.corrupted, metric, "eap-ig", steps=2.0)
    with pytest.raises(ValueError, match="eap-relp"):
        from workbench.patching.rules import RelPRules

        edge_scores(model, task.clean, task.corrupted, metric, "eap", rules=RelPRules())
    with pytest.raises(ValueError, match="use_normalization_before_and_after"):
        gm, gt, gmet = _setup("gemma2")
        edge_scores(gm, gt.clean, gt.corrupted, gmet)
    assert hooks_left(model) == 0 and not model.cfg.use_split_qkv_input
