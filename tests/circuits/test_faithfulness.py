"""Circuit metrics against a reference written here with plain TransformerLens hooks (TL's split
per-head inputs): every receiver input loses the current-minus-corrupted output of each dropped
edge's sender, in one clean forward pass."""

import pytest
import torch
from architectures import family_model
from test_edges import _receiver_hook, split_flags

from workbench.circuits.edges import edge_scores
from workbench.circuits.faithfulness import circuit_metric, default_ks, faithfulness_curve
from workbench.circuits.graph import Graph
from workbench.patching.tasks import make_metric, random_task


def _setup(family, seed=0):
    model = family_model(family, n_layers=2)
    task = random_task(model.cfg.d_vocab, n=3, seq_len=7, seed=seed)
    return model, task, make_metric(model, task)


def _sender_out(model, s, cache):
    if s.kind == "embed":
        return cache["blocks.0.hook_resid_pre"]
    if s.kind == "mlp":
        return cache[f"blocks.{s.layer}.hook_mlp_out"]
    return cache[f"blocks.{s.layer}.attn.hook_z"][:, :, s.head] @ model.blocks[s.layer].attn.W_O[s.head]


def reference_circuit_metric(model, task, metric, graph, keep) -> float:
    with split_flags(model):
        _, xc = model.run_with_cache(task.corrupted)
        cur = {}

        def record(x, hook):
            cur[hook.name] = x

        def drop(x, hook):
            x = x.clone()
            for v, r in enumerate(graph.receivers):
                name, head = _receiver_hook(model, r)
                if name != hook.name:
                    continue
                for u, s in enumerate(graph.senders):
                    if graph.edges[u, v] and not keep[u, v]:
                        d = _sender_out(model, s, cur) - _sender_out(model, s, xc)
                        if head is None:
                            x -= d
                        else:
                            x[:, :, head] -= d
            return x

        rec = ["blocks.0.hook_resid_pre"]
        rec += [f"blocks.{L}.attn.hook_z" for L in range(model.cfg.n_layers)]
        rec += [f"blocks.{L}.hook_mlp_out" for L in range(model.cfg.n_layers)]
        names = sorted({_receiver_hook(model, r)[0] for r in graph.receivers})
        with torch.no_grad(), model.hooks(fwd_hooks=[(n, record) for n in rec] + [(n, drop) for n in names]):
            return metric(model(task.clean)).item()


@pytest.mark.parametrize("family", ["gpt2", "llama", "neox"])
def test_circuit_metric_equals_the_reference(family):
    model, task, metric = _setup(family)
    graph = Graph.of(model)
    g = torch.Generator().manual_seed(0)
    masks = [graph.edges & (torch.rand(graph.edges.shape, generator=g) < p) for p in (0.3, 0.7)]
    ours = circuit_metric(model, task.clean, task.corrupted, metric, torch.stack(masks), tokens_per_pass=10)
    for m, v in zip(masks, ours):
        assert float(v) == pytest.approx(reference_circuit_metric(model, task, metric, graph, m), abs=1e-4)
    empty, full = circuit_metric(
        model, task.clean, task.corrupted, metric, torch.stack([torch.zeros_like(graph.edges), graph.edges])
    )
    assert float(empty) == pytest.approx(0.0, abs=1e-4) and float(full) == pytest.approx(1.0, abs=1e-4)
    assert not model.cfg.use_split_qkv_input


def test_faithfulness_curve_shapes_and_end_points():
    model, task, metric = _setup("llama", seed=1)
    scores = [edge_scores(model, task.clean, task.corrupted, metric, m) for m in ("eap", "eap-relp")]
    E = scores[0].graph.n_edges
    ks = [0, 3, 10, E]
    curve = faithfulness_curve(model, task.clean, task.corrupted, metric, scores, ks, random_seeds=2)
    assert curve.ks == tuple(ks) and curve.random.shape == (2, 4) and set(curve.curves) == {"eap", "eap-relp"}
    for v in [*curve.curves.values(), *curve.random]:
        assert float(v[0]) == pytest.approx(0.0, abs=1e-4) and float(v[-1]) == pytest.approx(1.0, abs=1e-4)
    k10 = circuit_metric(model, task.clean, task.corrupted, metric, scores[0].top(10))
    assert float(curve.curves["eap"][2]) == pytest.approx(float(k10[0]), abs=1e-5)
    assert default_ks(100)[0] == 0 and default_ks(100)[-1] == 100
    with pytest.raises(ValueError):
        faithfulness_curve(model, task.clean, task.corrupted, metric, scores, [E + 1])
    with pytest.raises(TypeError):
        faithfulness_curve(model, task.clean, task.corrupted, metric, scores[0])
    with pytest.raises(ValueError, match="not edges"):
        circuit_metric(model, task.clean, task.corrupted, metric, ~scores[0].graph.edges)
