import math

import pytest
import torch
from concept_helpers import ctx_for

from workbench.concepts import AblateAndAdd, ACEEdit, GCAVEdit, RowGroups, fit_vector, gcav_epsilon, steering_edit
from workbench.concepts.transport import TransportEdit
from workbench.edits import AddVector
from workbench.registry import HookRegistry
from workbench.sites import Site

SITE = "resid_post.0"


def _tokens(batch=3, pos=7, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, pos), generator=g)


def _probe_for(tiny, tokens, target=0.5):
    """A probe whose ``target`` level set cuts through the tiny model's activations at SITE."""
    reg = HookRegistry(tiny)
    reg.probe("h", SITE)
    reg.run(tokens)
    h = reg.records["h"].reshape(-1, tiny.cfg.d_model)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(tiny.cfg.d_model, generator=g) * 0.7
    b = math.log(target / (1 - target)) - float((h @ w).median())  # half the positions on each side
    return w, b


@pytest.mark.parametrize("mode,target", [("add", 0.9), ("add", 0.999), ("remove", 0.1), ("remove", 0.02)])
def test_gcav_hits_the_target_exactly_where_it_acts(tiny, mode, target):
    tokens = _tokens()
    w, b = _probe_for(tiny, tokens, target)
    reg = HookRegistry(tiny)
    reg.probe("before", SITE, when="before")
    reg.steer("gcav", SITE, GCAVEdit(w, b, target, mode), positions="all")
    reg.probe("after", SITE, when="after")
    reg.run(tokens, need_logits=True)
    p_before = torch.sigmoid(reg.records["before"].double() @ w.double() + b)
    p_after = torch.sigmoid(reg.records["after"].double() @ w.double() + b)
    needed = (p_before < target) if mode == "add" else (p_before > target)
    assert needed.any() and (~needed).any(), "the test probe must leave some positions on each side"
    assert torch.allclose(p_after[needed], torch.full_like(p_after[needed], target), atol=1e-4)
    assert torch.equal(reg.records["after"][~needed], reg.records["before"][~needed])


def test_gcav_epsilon_closed_form():
    w = torch.tensor([3.0, 4.0])
    h = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    eps = gcav_epsilon(h, w, 0.0, 0.5, "add")
    assert eps.tolist() == [0.0, 0.0]
    eps = gcav_epsilon(h, w, -1.0, 1 / (1 + math.exp(-4.0)), "add")  # target logit 4: (4 + 1 - w·h)/‖w‖
    assert eps[0].item() == pytest.approx(1.0) and eps[1].item() == 0.0
    eps = gcav_epsilon(h, w, 0.0, 0.5, "remove")
    assert eps[1].item() == pytest.approx(30 / 5)


def test_gcav_acts_on_generated_tokens(tiny):
    tokens = _tokens(batch=2, pos=5)
    w, b = _probe_for(tiny, tokens)
    reg = HookRegistry(tiny)
    reg.steer("gcav", SITE, GCAVEdit(w, b, 0.95, "add"), positions="generated")
    reg.probe("after", SITE, positions="generated")
    from workbench.tokens import Batch

    reg.generate(Batch(tokens, torch.ones_like(tokens)), max_new_tokens=4, stop_at_eos=False)
    rec = reg.records["after"]
    p = torch.sigmoid(rec.double() @ w.double() + b)
    assert rec.shape[:2] == (2, 3)  # the 4th new token is sampled but never fed back through the model
    assert bool((p >= 0.95 - 1e-4).all())


def test_gcav_rejects_bad_targets():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        GCAVEdit(torch.ones(4), 0.0, 1.0)
    with pytest.raises(ValueError, match="exactly one"):
        GCAVEdit(torch.ones(4), 0.0, 0.9, target_logit=3.0)
    with pytest.raises((ValueError, TypeError), match="mode"):  # TypeError: the signature check, when on
        GCAVEdit(torch.ones(4), 0.0, 0.9, "push")
    edit = GCAVEdit(torch.tensor([2.0, 0.0]), 1.0, target_logit=41.0)  # p = 1 - 1.6e-18: only a logit can say it
    assert edit(torch.zeros(1, 1, 2), ctx_for(torch.zeros(1, 1, 2)))[0, 0, 0].item() == pytest.approx(20.0)


def test_ablation_and_ace_edits_set_the_component(tiny):
    d = tiny.cfg.d_model
    g = torch.Generator().manual_seed(0)
    r, mu0 = torch.randn(d, generator=g), torch.randn(d, generator=g)
    r_hat = r / r.norm()
    tokens = _tokens()
    for edit, expected in (
        (AblateAndAdd(r, 0.0), 0.0),
        (AblateAndAdd(r, 2.0), 2.0 * float(r.norm())),
        (ACEEdit(r, mu0, 0.0), float(mu0 @ r_hat)),
        (ACEEdit(r, mu0, -1.5), float(mu0 @ r_hat) - 1.5 * float(r.norm())),
    ):
        reg = HookRegistry(tiny)
        reg.probe("before", SITE, when="before")
        reg.steer("e", SITE, edit)
        reg.probe("after", SITE)
        reg.run(tokens, need_logits=True)
        before, after = reg.records["before"], reg.records["after"]
        comp = after @ r_hat
        assert torch.allclose(comp, torch.full_like(comp, expected), atol=1e-3)
        # everything orthogonal to r is untouched
        orth = lambda x: x - (x @ r_hat)[..., None] * r_hat
        assert torch.allclose(orth(after), orth(before), atol=1e-4)


def test_row_groups_equal_separate_runs(tiny):
    d = tiny.cfg.d_model
    v = torch.randn(d, generator=torch.Generator().manual_seed(2))
    tokens = _tokens(batch=2)
    edits = [None, AddVector(v, 3.0), AblateAndAdd(v, 1.0)]
    reg = HookRegistry(tiny)
    reg.steer("rows", SITE, RowGroups(edits, [2, 2, 2]))
    together = reg.run(torch.cat([tokens] * 3), need_logits=True)
    for k, edit in enumerate(edits):
        single = HookRegistry(tiny)
        if edit is not None:
            single.steer("one", SITE, edit)
        alone = single.run(tokens, need_logits=True) if edit is not None else tiny(tokens)
        assert torch.allclose(together[2 * k : 2 * k + 2], alone, atol=1e-4)
    with pytest.raises(ValueError, match="covers 6 rows"):
        reg.run(tokens, need_logits=True)
    assert not any(m._forward_hooks for m in tiny.modules()), "a hook leaked after the error"


def test_steering_edit_per_method():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(30, 8, generator=g) + 2
    neg = torch.randn(30, 8, generator=g) - 2
    pool = torch.cat([pos, neg, torch.randn(30, 8, generator=g) * 3 + 1])
    site = Site(0, "resid_post")
    r_norm = float((pos.mean(0) - neg.mean(0)).norm())
    h = torch.zeros(1, 1, 8)
    for method in ("mean_diff", "pca_diff", "mean_centring"):
        vec = fit_vector(method, site, pos, neg, all_training=pool)
        for toward in ("positive", "negative"):
            e = steering_edit(vec, 2.0, toward)
            push = e(h, ctx_for(h))[0, 0]
            assert float(push.norm()) == pytest.approx(2.0 * r_norm, rel=1e-4)  # same push length for every method
            side = float(push @ (pos.mean(0) - neg.mean(0)))
            assert (side > 0) == (toward == "positive")
    lg = fit_vector("logistic", site, pos, neg)
    e = steering_edit(lg, 2.0, "negative")
    assert isinstance(e, GCAVEdit) and e.mode == "remove"
    assert e.target_logit == pytest.approx(-2.0 * lg.params["w_norm"] * r_norm)
    # a token on the boundary ends up 2·‖r‖ past it along v
    h0 = (-lg.bias / lg.params["w_norm"]) * lg.unit
    moved = e(h0[None, None], ctx_for(h0[None, None]))[0, 0]
    assert float((moved - h0) @ lg.unit) == pytest.approx(-2.0 * r_norm, rel=1e-4)
    with pytest.raises(ValueError, match="must be > 0"):
        steering_edit(lg, -1.0)
    with pytest.raises((ValueError, TypeError), match="toward"):  # TypeError: the signature check, when on
        steering_edit(lg, 0.9, "up")


def test_ablate_and_add_and_ace_equal_their_formulas():
    """The compositions give the closed forms: h − r̂ r̂ᵀ h + α r and h − r̂ r̂ᵀ (h − μ₀) + α r, computed
    here in float64 element by element."""
    g = torch.Generator().manual_seed(3)
    d = 16
    r, mu0 = torch.randn(d, generator=g), torch.randn(d, generator=g) * 5
    h = torch.randn(2, 5, d, generator=g) * 10
    hd, rd, md = h.double(), r.double(), mu0.double()
    r_hat = rd / rd.norm()
    for coeff in (0.0, 1.5, -4.0):
        ablated = hd - torch.einsum("bpd,d->bp", hd, r_hat)[..., None] * r_hat + coeff * rd
        ace = hd - torch.einsum("bpd,d->bp", hd - md, r_hat)[..., None] * r_hat + coeff * rd
        torch.testing.assert_close(AblateAndAdd(r, coeff)(h, ctx_for(h)).double(), ablated, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(ACEEdit(r, mu0, coeff)(h, ctx_for(h)).double(), ace, atol=1e-4, rtol=1e-5)
    # and they are the compositions of the basic edits, step by step
    from workbench.edits import Compose, ProjectOut

    assert torch.equal(AblateAndAdd(r, 2.0)(h, ctx_for(h)), AddVector(r, 2.0)(ProjectOut(r)(h, ctx_for(h)), ctx_for(h)))
    steps = Compose(AddVector(mu0, -1.0), ProjectOut(r), AddVector(mu0, 1.0), AddVector(r, 2.0))
    assert torch.equal(ACEEdit(r, mu0, 2.0)(h, ctx_for(h)), steps(h, ctx_for(h)))
    with pytest.raises(ValueError, match=r"ACEEdit\.r has shape"):
        ACEEdit(r, mu0)(torch.zeros(1, 1, d + 1), ctx_for(torch.zeros(1, 1, d + 1)))


def test_every_method_is_one_registered_object():
    from workbench.concepts import METHODS, get_method, method_class, method_names

    assert METHODS == ("logistic", "mean_diff", "mean_centring", "pca_diff", "ablation", "ace", "linear_act")
    assert method_names()[: len(METHODS)] == METHODS
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(12, 6, generator=g) + 1, torch.randn(12, 6, generator=g) - 1
    site = Site(0, "resid_post")
    kinds = {"logistic": GCAVEdit, "ablation": AblateAndAdd, "ace": ACEEdit, "linear_act": TransportEdit}
    for name in METHODS:
        method = get_method(name)
        assert method.name == name and method_class(name).label
        vec = method.fit(site, pos, neg, all_training=torch.cat([pos, neg]))
        assert vec.method == name
        strength = (method_class(name).default_grid or (2.0,))[-1]  # Linear-AcT's λ lies in [0, 1]
        edit = method.edit(vec, strength, "negative")
        assert isinstance(edit, kinds.get(name, AddVector))
        assert type(steering_edit(vec, strength, "negative")) is type(edit)  # the thin wrapper asks the registry
    assert get_method("logistic", C=0.1).C == 0.1
    with pytest.raises(TypeError, match="has no option"):
        get_method("mean_diff", C=0.1)
    with pytest.raises(ValueError, match=r"LogisticCAV\.C"):
        get_method("logistic", C=0.0)
    with pytest.raises(ValueError, match="edits 'ace' vectors"):
        get_method("ace").edit(fit_vector("mean_diff", site, pos, neg), 1.0)


def test_a_new_method_is_one_class():
    """Registering one class is all it takes for fit_vector, steering_edit and save/load to know a method."""
    from dataclasses import dataclass
    from typing import ClassVar

    from workbench.concepts import ConceptMethod, ConceptVector, register_method
    from workbench.concepts.method import _REGISTRY
    from workbench.edits import Clamp

    @register_method
    @dataclass(frozen=True)
    class FirstDifference(ConceptMethod):
        name: ClassVar[str] = "test_first_difference"
        label: ClassVar[str] = "h⁺₀ − h⁻₀"

        def fit(self, site, pos, neg, *, all_training=None, concept="", extra_params=None):
            return ConceptVector(site, pos[0] - neg[0], self.name, {"rows": 1}, concept=concept)

        def _edit(self, vector, strength, toward, scale):
            return Clamp(vector.direction, strength if toward == "positive" else -strength)

    try:
        pos, neg = torch.eye(4)[:2] * 3, torch.zeros(2, 4)
        vec = fit_vector("test_first_difference", Site(1, "resid_post"), pos, neg)
        edit = steering_edit(vec, 2.0)
        assert isinstance(edit, Clamp) and edit(torch.zeros(1, 1, 4), ctx_for(torch.zeros(1, 1, 4)))[0, 0].tolist() == [
            2.0,
            0,
            0,
            0,
        ]
        with pytest.raises(ValueError, match="already registered"):

            @register_method
            @dataclass(frozen=True)
            class Again(ConceptMethod):
                name: ClassVar[str] = "mean_diff"
    finally:
        _REGISTRY.pop("test_first_difference", None)
    with pytest.raises(ValueError, match="unknown concept method 'test_first_difference'"):
        steering_edit(vec, 2.0)
