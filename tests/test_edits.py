import pytest
import torch

from workbench.edits import AddVector, Clamp, Compose, EditContext, ProjectOut, Replace
from workbench.sites import Site


def _h(seed=0, d=6):
    return torch.randn(2, 3, d, generator=torch.Generator().manual_seed(seed))


# Every edit gets a real context (the registry always passes one; the runtime type checks insist).
CTX = EditContext(
    Site(0, "resid_post"),
    torch.ones(2, 3, dtype=torch.bool),
    torch.arange(3).expand(2, 3),
    torch.full((2,), 3),
    torch.full((2,), 3),
    0,
)


def test_compose_applies_edits_in_order():
    h = _h()
    r = torch.randn(6, generator=torch.Generator().manual_seed(1))
    r_hat = r / r.norm()
    add, remove = AddVector(r, 2.5), ProjectOut(r)
    ablate_then_add = Compose(remove, add)(h, CTX)
    add_then_ablate = Compose(add, remove)(h, CTX)
    # brute force: the component along r̂ after each order
    assert torch.allclose(ablate_then_add @ r_hat, torch.full((2, 3), 2.5 * float(r.norm())), atol=1e-5)
    assert torch.allclose(add_then_ablate @ r_hat, torch.zeros(2, 3), atol=1e-5)
    assert torch.equal(ablate_then_add, add(remove(h, CTX), CTX))
    # two translations commute, a clamp and a translation do not
    a, b = AddVector(torch.ones(6), 1.0), AddVector(r, -1.0)
    torch.testing.assert_close(Compose(a, b)(h, CTX), Compose(b, a)(h, CTX))
    clamp = Clamp(r, 0.0)
    assert not torch.allclose(Compose(clamp, a)(h, CTX), Compose(a, clamp)(h, CTX))


def test_compose_flattens_validates_and_leaves_the_input_alone():
    h = _h()
    before = h.clone()
    v = torch.ones(6)
    nested = Compose(AddVector(v, 1.0), Compose(AddVector(v, 2.0), Replace(torch.zeros(6))))
    assert len(nested) == 3 and isinstance(nested.edits[2], Replace)
    assert torch.equal(nested(h, CTX), torch.zeros_like(h)) and torch.equal(h, before)
    assert "AddVector" in repr(nested)
    with pytest.raises(ValueError, match="at least one edit"):
        Compose()
    # Our own check names the position; under the tests' runtime type checks the signature check fires
    # first and names the value. Either way: a TypeError that says what was wrong.
    with pytest.raises(TypeError, match=r"edit 1 must be callable|'not an edit'"):
        Compose(AddVector(v, 1.0), "not an edit")


def test_compose_runs_as_one_steer(tiny):
    """Through the registry a composition equals its steps applied one after the other by two steers."""
    from workbench.registry import HookRegistry

    d = tiny.cfg.d_model
    r = torch.randn(d, generator=torch.Generator().manual_seed(2))
    tokens = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(3))
    one = HookRegistry(tiny)
    one.steer("both", "resid_post.0", Compose(ProjectOut(r), AddVector(r, 1.5)))
    two = HookRegistry(tiny)
    two.steer("ablate", "resid_post.0", ProjectOut(r))
    two.steer("add", "resid_post.0", AddVector(r, 1.5))
    torch.testing.assert_close(one.run(tokens, need_logits=True), two.run(tokens, need_logits=True))
