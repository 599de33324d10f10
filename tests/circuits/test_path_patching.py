"""Path patching against a brute-force two-pass implementation written here with plain
TransformerLens hooks (full forward passes, every head's ``hook_z`` and every MLP's ``hook_mlp_out``
frozen at its corrupted value), on tiny models of several families."""

import inspect

import pytest
import torch
from architectures import family_model

from workbench.circuits.nodes import Receiver, Sender, reaches
from workbench.circuits.path_patching import path_patch, path_patch_matrix
from workbench.circuits.path_patching import path_patch as path_patch_fn
from workbench.patching.tasks import make_metric, random_task

TOL = 1e-4


def hooks_left(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def _receiver_hooks(model, r: Receiver) -> list[str]:
    if r.kind in ("q", "k", "v"):
        return [f"blocks.{r.layer}.attn.hook_{r.kind}"]
    names = [f"blocks.{r.layer}.mlp.hook_pre"]
    if model.cfg.gated_mlp:
        names.append(f"blocks.{r.layer}.mlp.hook_pre_linear")
    return names


_CACHES: dict = {}


def _tl_caches(model, task):
    key = (id(model), id(task))
    if key not in _CACHES:
        _CACHES.clear()
        _CACHES[key] = (model.run_with_cache(task.clean)[1], model.run_with_cache(task.corrupted)[1])
    return _CACHES[key]


def brute_force(model, task, metric, sender: Sender, receivers: list[Receiver]) -> float:
    cc, xc = _tl_caches(model, task)
    n_layers = model.cfg.n_layers

    def freeze_z(z, hook):
        new = xc[hook.name].clone()
        if sender.kind == "head" and hook.layer() == sender.layer:
            new[:, :, sender.head] = cc[hook.name][:, :, sender.head]
        return new

    def freeze_mlp(out, hook):
        if sender.kind == "mlp" and hook.layer() == sender.layer:
            return cc[hook.name].clone()
        return xc[hook.name].clone()

    def clean_embed(x, hook):
        return cc[hook.name].clone()

    recorded = {}

    def record(x, hook):
        recorded[hook.name] = x.detach().clone()

    fwd = [(f"blocks.{L}.attn.hook_z", freeze_z) for L in range(n_layers)]
    fwd += [(f"blocks.{L}.hook_mlp_out", freeze_mlp) for L in range(n_layers)]
    if sender.kind == "embed":
        fwd += [(n, clean_embed) for n in ("hook_embed", "hook_pos_embed") if n in model.hook_dict]
    rec_names = {n for r in receivers if r.kind != "logits" for n in _receiver_hooks(model, r)}
    # Record after the freezing hooks: MLP pre-activations come before hook_mlp_out, q/k/v before hook_z.
    fwd += [(n, record) for n in sorted(rec_names)]
    with torch.no_grad(), model.hooks(fwd_hooks=fwd):
        frozen_logits = model(task.corrupted)
    if [r.kind for r in receivers] == ["logits"]:
        return metric(frozen_logits).item()

    def patch(x, hook):
        new = x.clone()
        for r in receivers:
            if r.kind in ("q", "k", "v") and hook.name == _receiver_hooks(model, r)[0]:
                new[:, :, r.head] = recorded[hook.name][:, :, r.head]
            elif r.kind == "mlp" and hook.name in _receiver_hooks(model, r):
                new = recorded[hook.name].clone()
        return new

    with torch.no_grad(), model.hooks(fwd_hooks=[(n, patch) for n in sorted(rec_names)]):
        logits = model(task.corrupted)
    return metric(logits).item()


def _setup(family, seed=0, **kw):
    model = family_model(family, n_layers=3, **kw)
    task = random_task(model.cfg.d_vocab, n=3, seq_len=8, seed=seed)
    return model, task, make_metric(model, task)


SENDERS = ["embed", "L0H1", "L1H3", "MLP0", "MLP1", "L2H0"]


@pytest.mark.parametrize("family", ["gpt2", "llama", "neox", "gemma2"])
@pytest.mark.parametrize(
    "receivers",
    [["logits"], ["L2H1.q"], ["L2H0.k"], ["L2H1.v"], ["MLP1"], ["L2H1.q", "L2H2.q", "L1H0.q"]],
    ids=["logits", "q", "k", "v", "mlp", "joint-q"],
)
def test_path_patching_equals_brute_force(family, receivers):
    model, task, metric = _setup(family)
    res = path_patch(model, task.clean, task.corrupted, metric, SENDERS, receivers, tokens_per_pass=40)
    rec = [Receiver.parse(r) for r in receivers]
    for s, v in zip(res.senders, res.values):
        reached = [r for r in rec if reaches(s, r, model)]
        if not reached:
            assert abs(float(v)) < TOL  # no direct path: the corrupted run
            continue
        ref = brute_force(model, task, metric, s, reached)
        assert float(v) == pytest.approx(ref, abs=TOL), (s.label, receivers)
    assert hooks_left(model) == 0


def test_every_head_to_logits_in_one_call_and_batching_does_not_matter():
    model, task, metric = _setup("llama", seed=1)
    a = path_patch(model, task.clean, task.corrupted, metric)  # every head, logits
    b = path_patch(model, task.clean, task.corrupted, metric, tokens_per_pass=8)
    assert a.values.shape == (model.cfg.n_layers * model.cfg.n_heads,)
    assert torch.allclose(a.values, b.values, atol=1e-5)
    for s, v in list(zip(a.senders, a.values))[::5]:
        assert float(v) == pytest.approx(brute_force(model, task, metric, s, [Receiver("logits")]), abs=TOL)
    grid = a.grid()
    assert grid.shape == (model.cfg.n_layers, model.cfg.n_heads) and torch.isfinite(grid).all()
    assert a.top(1)[0][1] == pytest.approx(float(a.values.abs().max()) * (1 if a.top(1)[0][1] > 0 else -1))


def test_matrix_is_one_receiver_at_a_time_with_nan_where_no_path():
    model, task, metric = _setup("gpt2", seed=2)
    senders = ["L0H0", "L1H2", "MLP1"]
    receivers = ["L1H0.q", "L2H3.k", "MLP1", "logits"]
    m = path_patch_matrix(model, task.clean, task.corrupted, metric, senders, receivers)
    assert m.values.shape == (3, 4)
    for i, s in enumerate(senders):
        for j, r in enumerate(receivers):
            sp, rp = Sender.parse(s), Receiver.parse(r)
            if not reaches(sp, rp, model):
                assert torch.isnan(m.values[i, j])
            else:
                assert float(m.values[i, j]) == pytest.approx(brute_force(model, task, metric, sp, [rp]), abs=TOL)


def test_arguments_are_validated():
    path_patch = inspect.unwrap(path_patch_fn)  # our checks, below the runtime signature check the tests install
    model, task, metric = _setup("llama")
    args = (model, task.clean, task.corrupted, metric)
    for senders, err in (
        (["L3H0"], ValueError),
        (["L0H4"], ValueError),
        ([(True, 0)], TypeError),
        (["L0H0", (0, 0)], ValueError),
        ([], ValueError),
        ("L0H0", TypeError),
        (["attn0"], ValueError),
    ):
        with pytest.raises(err):
            path_patch(*args, senders)
    for receivers, err in (
        (["L0H0.x"], ValueError),
        (["L1H2.k"], ValueError),  # 2 key/value heads in the tiny llama (GQA)
        ([], ValueError),
        (["logits", "logits"], ValueError),
    ):
        with pytest.raises(err):
            path_patch(*args, ["L0H0"], receivers)
    with pytest.raises(ValueError, match="equal shapes"):
        path_patch(model, task.clean, task.corrupted[:, :-1], metric)
    with pytest.raises(TypeError, match="LogitDiffMetric"):
        path_patch(model, task.clean, task.corrupted, lambda x: x)
    with pytest.raises(TypeError):
        path_patch(*args, ["L0H0"], tokens_per_pass=True)
    assert hooks_left(model) == 0


@pytest.mark.embedded
def test_path_patching_on_embedded_ioi_equals_brute_force(embedded):
    from workbench.patching.tasks import ioi_task

    task = ioi_task(embedded, 4)
    metric = make_metric(embedded, task)
    senders = ["L20H0", "L23H3", "MLP21"]
    for receivers in (["logits"], ["L23H3.q", "L29H1.q"]):
        res = path_patch(embedded, task.clean, task.corrupted, metric, senders, receivers)
        rec = [Receiver.parse(r) for r in receivers]
        for s, v in zip(res.senders, res.values):
            reached = [r for r in rec if reaches(s, r, embedded)]
            assert float(v) == pytest.approx(brute_force(embedded, task, metric, s, reached), abs=TOL)
