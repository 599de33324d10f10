"""Function vectors on a tiny model with a whitespace tokenizer: the mean head outputs and the
causal indirect effects against a reference written here with plain TransformerLens hooks (each
prompt run on its own, unpadded), the function vector's definition, and the accuracy with a vector
added against a hooked forward."""

import pytest
import torch
from architectures import family_model, with_tokenizer

from workbench.circuits.function_vectors import (
    FV_TASKS,
    accuracy,
    answer_token,
    causal_indirect_effects,
    function_vector,
    icl_prompts,
    icl_task,
    mean_head_outputs,
    run_function_vectors,
)


def _model():
    return with_tokenizer(family_model("llama", n_layers=2, d_vocab=512))


def _ids(model, text):
    return torch.tensor(model.tokenizer(text)["input_ids"])[None]


def test_prompts_are_k_shot_with_deranged_labels():
    model = _model()
    t = icl_task(model, "antonym", n_test=10)
    assert len(t.test) == 10 and not set(t.test) & set(t.train)
    q = t.train[:3]
    clean = icl_prompts(t, q, 4, seed=1)
    shuf = icl_prompts(t, q, 4, seed=1, shuffled=True)
    for c, s, (x, _) in zip(clean, shuf, q):
        c_lines, s_lines = c.split("\n"), s.split("\n")
        assert len(c_lines) == 5 and c_lines[-1] == f"{x}:" and s_lines[-1] == f"{x}:"
        c_pairs = [ln.split(": ") for ln in c_lines[:-1]]
        s_pairs = [ln.split(": ") for ln in s_lines[:-1]]
        assert [a for a, _ in c_pairs] == [a for a, _ in s_pairs]  # same inputs
        assert sorted(b for _, b in c_pairs) == sorted(b for _, b in s_pairs)  # same labels, moved
        assert all(cb != sb for (_, cb), (_, sb) in zip(c_pairs, s_pairs))  # every label moved
        assert all(x != a for a, _ in c_pairs)  # the query is not a demonstration
    with pytest.raises(ValueError, match="unknown"):
        icl_task(model, "nope")
    assert set(FV_TASKS) == {"antonym", "capital", "english_french"}


def test_mean_outputs_and_cie_equal_transformer_lens_per_prompt():
    model = _model()
    t = icl_task(model, "antonym", n_test=10)
    q = t.train[:4]
    clean = icl_prompts(t, q, 3, seed=0)
    shuf = icl_prompts(t, q, 4, seed=2, shuffled=True)  # unequal lengths: left padding inside
    z = mean_head_outputs(model, clean, batch_size=3)
    ref = torch.stack(
        [
            torch.stack([model.run_with_cache(_ids(model, p))[1][f"blocks.{L}.attn.hook_z"][0, -1] for L in range(2)])
            for p in clean
        ]
    ).mean(0)
    assert torch.allclose(z, ref, atol=1e-5)
    ans = [answer_token(model, a) for _, a in q]
    cie = causal_indirect_effects(model, shuf, ans, z, tokens_per_pass=20)
    for L, h in [(0, 1), (1, 3), (1, 0)]:
        effects = []
        for p, a in zip(shuf, ans):
            ids = _ids(model, p)

            def patch(x, hook, L=L, h=h):
                x = x.clone()
                x[:, -1, h] = z[L, h]
                return x

            with torch.no_grad():
                p0 = model(ids)[0, -1].softmax(-1)[a]
                with model.hooks(fwd_hooks=[(f"blocks.{L}.attn.hook_z", patch)]):
                    p1 = model(ids)[0, -1].softmax(-1)[a]
            effects.append(float(p1 - p0))
        assert float(cie[L, h]) == pytest.approx(sum(effects) / len(effects), abs=1e-6)


def test_function_vector_and_accuracy_with_it():
    model = _model()
    z = torch.randn(2, 4, 8)
    cie = torch.tensor([[0.1, 0.5, -0.2, 0.0], [0.3, 0.05, 0.4, -0.1]])
    fv, heads = function_vector(model, z, cie, 3)
    assert heads == [(0, 1), (1, 2), (1, 0)]
    want = sum(z[L, h] @ model.blocks[L].attn.W_O[h] for L, h in heads)
    assert torch.allclose(fv, want, atol=1e-5)
    base = torch.randn(2, 4, 8)
    fvc, _ = function_vector(model, z, cie, 3, z_base=base)
    assert torch.allclose(fvc, want - sum(base[L, h] @ model.blocks[L].attn.W_O[h] for L, h in heads), atol=1e-5)
    prompts, answers = ["hot:", "big:", "up:"], [5, 6, 7]
    v = 30 * torch.randn(model.cfg.d_model)
    got = accuracy(model, prompts, answers, add=(1, v))
    hits = []
    for p, a in zip(prompts, answers):

        def add(x, hook):
            x = x.clone()
            x[:, -1] += v
            return x

        with torch.no_grad(), model.hooks(fwd_hooks=[("blocks.1.hook_resid_post", add)]):
            hits.append(int(model(_ids(model, p))[0, -1].argmax()) == a)
    assert got == pytest.approx(sum(hits) / 3)


def test_run_function_vectors_end_to_end_on_a_tiny_model():
    model = _model()
    r = run_function_vectors(model, "antonym", k=3, n_prompts=4, n_test=8, n_heads=2, layers=[0, 1])
    assert r.cie.shape == (2, 4) and len(r.heads) == 2 and set(r.fv_by_layer) == {0, 1}
    assert 0.0 <= r.zero_shot <= 1.0 and 0.0 <= r.in_context <= 1.0
    assert not torch.allclose(r.fv, r.fv_centred)
    assert r.best()[0] in (0, 1)
