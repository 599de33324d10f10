"""Patchscopes against a reference written here: greedy decoding by full forward passes with a
plain TransformerLens hook that replaces the placeholder's residual (no KV cache)."""

import inspect

import pytest
import torch
from architectures import family_model, random_tokens

from workbench.circuits.patchscopes import patchscope
from workbench.readout import resid_to_logits


def hooks_left(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def reference(model, source, target, layer, target_layer, pos, ph, new):
    _, cache = model.run_with_cache(source)
    h = cache[f"blocks.{layer}.hook_resid_post"][0, pos]

    def patch(x, hook):
        x = x.clone()
        x[:, ph] = h
        return x

    seq = target.clone()
    probs = []
    with torch.no_grad(), model.hooks(fwd_hooks=[(f"blocks.{target_layer}.hook_resid_post", patch)]):
        for _ in range(new):
            p = model(seq)[0, -1].softmax(-1)
            probs.append(p)
            seq = torch.cat([seq, p.argmax()[None, None]], 1)
    return seq[0, target.shape[1] :], probs[0], h


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_patchscope_equals_greedy_decoding_with_a_tl_hook(family):
    model = family_model(family, n_layers=3)
    source = random_tokens(model, batch=1, seq_len=7, seed=1)
    target = random_tokens(model, batch=1, seq_len=6, seed=2)
    r = patchscope(model, source, position=4, target=target, placeholder=-2, max_new_tokens=3)
    assert r.layers == (0, 1, 2) and r.target_layers == r.layers
    for i, L in enumerate(r.layers):
        toks, p0, h = reference(model, source, target, L, L, 4, 4, 3)
        assert r.new_tokens[i].tolist() == toks.tolist()
        assert float(r.first_prob[i]) == pytest.approx(float(p0[toks[0]]), abs=1e-5)
        lens = resid_to_logits(model, h).softmax(-1)
        assert int(r.lens_token[i]) == int(lens.argmax()) and float(r.lens_prob[i]) == pytest.approx(float(lens.max()))
    r2 = patchscope(model, source, position=-1, layers=[0, 2], target=target, target_layer=1, max_new_tokens=2)
    for i, L in enumerate((0, 2)):
        toks, _, _ = reference(model, source, target, L, 1, source.shape[1] - 1, target.shape[1] - 1, 2)
        assert r2.new_tokens[i].tolist() == toks.tolist()
    assert len(r2.rows()) == 2 and r2.rows()[1]["target_layer"] == 1
    assert hooks_left(model) == 0


def test_patchscope_validates_its_arguments():
    ps = inspect.unwrap(patchscope)
    model = family_model("llama")
    src = random_tokens(model, batch=1, seq_len=5)
    for kw, err in (
        (dict(layers=[2]), ValueError),
        (dict(layers=[True]), TypeError),
        (dict(layers=[0, 0]), ValueError),
        (dict(layers=[]), TypeError),
        (dict(position=5), ValueError),
        (dict(target_layer=-1), ValueError),
        (dict(max_new_tokens=0), ValueError),
    ):
        with pytest.raises(err):
            ps(model, src, target=src, **kw)
    with pytest.raises(ValueError, match="one prompt"):
        ps(model, random_tokens(model, batch=2, seq_len=5), target=src)
    assert hooks_left(model) == 0
