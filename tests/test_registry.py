"""The hook registry: reads match TransformerLens' own cache, edits match hand-written TL hooks,
positions stay right under padding and KV-cached generation, and no hook is ever left behind."""

import inspect

import pytest
import torch

from workbench import AddVector, Clamp, HookRegistry, ProjectOut, Replace, tiny_model
from workbench.tokens import pad_rows


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models only: one intra-op thread (parallel regions of tiny ops stall on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def tokens(batch=2, pos=7, seed=0, vocab=50):
    return torch.randint(0, vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ probes
@pytest.mark.parametrize("reduce", [None, "mean", "last"])
def test_probe_matches_run_with_cache(tiny, reduce):
    toks = tokens()
    _, cache = tiny.run_with_cache(toks)
    ref = cache["blocks.1.hook_resid_mid"]
    reg = HookRegistry(tiny).probe("p", "resid_mid.1", reduce=reduce)
    assert reg.run(toks) is None  # probe-only: no logits
    want = {None: ref, "mean": ref.mean(1), "last": ref[:, -1]}[reduce]
    torch.testing.assert_close(reg.records["p"], want)


def test_probe_positions_and_attention_pattern(tiny):
    toks = tokens()
    _, cache = tiny.run_with_cache(toks)
    reg = HookRegistry(tiny)
    reg.probe("some", "resid_pre.1", positions=[0, 3])
    reg.probe("pattern", "attn.pattern.0", positions="last")
    reg.run(toks)
    torch.testing.assert_close(reg.records["some"], cache["blocks.1.hook_resid_pre"][:, [0, 3]])
    # query position is dim 2 of [batch, head, q, k]; probes put positions on dim 1
    torch.testing.assert_close(reg.records["pattern"][:, 0], cache["blocks.0.attn.hook_pattern"][:, :, -1])


def test_probe_only_run_stops_early(tiny):
    fired = []
    handles = [
        tiny.blocks[1].hook_resid_pre.register_forward_hook(lambda *a: fired.append("resid_pre.1")),
        tiny.blocks[1].hook_attn_out.register_forward_hook(lambda *a: fired.append("attn_out.1")),
        tiny.ln_final.register_forward_hook(lambda *a: fired.append("ln_final")),
    ]
    try:
        HookRegistry(tiny).probe("p", "resid_post.0").run(tokens())
        assert fired == []  # stop_at_layer=1: block 1 never starts
        HookRegistry(tiny).probe("p", "resid_pre.1").run(tokens())
        assert fired == ["resid_pre.1"]  # the early exit stops inside block 1, right after the read
        fired.clear()
        HookRegistry(tiny).probe("p", "resid_pre.1").run(tokens(), need_logits=True)
        assert fired == ["resid_pre.1", "attn_out.1", "ln_final"]
    finally:
        for h in handles:
            h.remove()
    assert n_hooks(tiny) == 0


def test_probe_left_padding_matches_unpadded_rows(tiny):
    rows = [[1, 2, 3, 4, 5, 6], [7, 8, 9]]
    reg = HookRegistry(tiny)
    reg.probe("last", "resid_post.1", reduce="last")
    reg.probe("mean", "resid_post.1", reduce="mean")
    reg.probe("all", "resid_post.1")
    for side in ("left", "right"):
        reg.run(pad_rows(rows, 0, padding_side=side))
        got = {k: reg.records[k] for k in ("last", "mean", "all")}
        for b, r in enumerate(rows):
            ref = tiny.run_with_cache(torch.tensor([r]))[1]["blocks.1.hook_resid_post"][0]
            torch.testing.assert_close(got["last"][b], ref[-1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got["mean"][b], ref.mean(0), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got["all"][b], ref, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ steers
def test_add_vector_matches_manual_tl_hook(tiny):
    toks = tokens()
    v = torch.randn(32, generator=torch.Generator().manual_seed(1))
    ref = tiny.run_with_hooks(toks, fwd_hooks=[("blocks.0.hook_resid_post", lambda a, hook: a + 3.0 * v)])
    reg = HookRegistry(tiny).steer("s", "resid_post.0", AddVector(v, 3.0))
    torch.testing.assert_close(reg.run(toks), ref)

    # positions: only position 2 edited
    def at2(a, hook):
        a = a.clone()
        a[:, 2] += 3.0 * v
        return a

    ref2 = tiny.run_with_hooks(toks, fwd_hooks=[("blocks.0.hook_resid_post", at2)])
    reg2 = HookRegistry(tiny).steer("s", "resid_post.0", AddVector(v, 3.0), positions=2)
    torch.testing.assert_close(reg2.run(toks), ref2)


def test_project_out_and_clamp_hit_their_targets(tiny):
    r = torch.randn(32, generator=torch.Generator().manual_seed(2))
    r_hat = r / r.norm()
    reg = HookRegistry(tiny)
    reg.steer("ablate", "resid_post.0", ProjectOut(r))
    reg.probe("after", "resid_post.0", when="after")
    reg.run(tokens(), need_logits=True)
    assert (reg.records["after"] @ r_hat).abs().max() < 1e-5
    reg.remove("ablate")
    reg.steer("clamp", "resid_post.0", Clamp(r, 4.5))
    reg.run(tokens(), need_logits=True)
    torch.testing.assert_close(reg.records["after"] @ r_hat, torch.full((2, 7), 4.5), atol=1e-5, rtol=0)


def test_steers_apply_in_registration_order_and_probes_see_before_or_after(tiny):
    r = torch.zeros(32)
    r[0] = 1.0
    reg = HookRegistry(tiny)
    reg.probe("before", "resid_post.0", when="before")
    reg.steer("clamp", "resid_post.0", Clamp(r, 1.0))
    reg.steer("add", "resid_post.0", AddVector(r, 2.0))
    reg.probe("after", "resid_post.0", when="after")
    reg.run(tokens(), need_logits=True)
    assert torch.allclose(reg.records["after"][..., 0], torch.tensor(3.0))  # clamp to 1, then add 2
    _, cache = tiny.run_with_cache(tokens())
    torch.testing.assert_close(reg.records["before"], cache["blocks.0.hook_resid_post"])
    reg.disable("clamp")
    reg.run(tokens(), need_logits=True)
    torch.testing.assert_close(reg.records["after"][..., 0], reg.records["before"][..., 0] + 2.0)
    reg.enable("clamp")
    table = reg.describe()
    assert list(table["name"]) == ["before", "clamp", "add", "after"]
    assert list(table["kind"]) == ["probe", "steer", "steer", "probe"]
    with reg.only("add", "after"):
        reg.run(tokens(), need_logits=True)
    torch.testing.assert_close(reg.records["after"][..., 0], cache["blocks.0.hook_resid_post"][..., 0] + 2.0)
    assert reg.describe()["enabled"].all()


def test_bad_input_is_named(tiny):
    reg = HookRegistry(tiny)
    with pytest.raises(ValueError, match=r"shape \(5,\).*shape \(2, 7, 32\)"):
        reg.steer("s", "resid_post.0", AddVector(torch.ones(5)))
        reg.run(tokens())
    assert n_hooks(tiny) == 0
    reg.clear()
    with pytest.raises(KeyError, match="close matches"):
        reg.probe("p", "resid_psot.0")
    reg.probe("p", "resid_post.0")
    with pytest.raises(ValueError, match="already registered"):
        reg.probe("p", "resid_post.1")
    with pytest.raises(KeyError, match="did you mean p"):
        reg.disable("pp")
    with pytest.raises(ValueError, match="reduce"):
        inspect.unwrap(HookRegistry.probe)(reg, "q", "resid_post.0", reduce="max")  # below the signature check
    with pytest.raises(ValueError, match="zero vector"):
        ProjectOut(torch.zeros(32))


# ------------------------------------------------------------------ cleanup
def test_no_hook_left_after_exceptions(tiny):
    reg = HookRegistry(tiny)
    reg.probe("p", "resid_post.0")
    reg.steer("s", "resid_post.1", AddVector(torch.ones(32)))
    with pytest.raises(ZeroDivisionError):
        with reg:
            assert n_hooks(tiny) == 2
            tiny(tokens())
            raise ZeroDivisionError
    assert n_hooks(tiny) == 0 and not reg.is_active

    def in_place(a, ctx):
        a += 1
        return a

    reg.steer("bad", "resid_post.0", in_place)
    with pytest.raises(RuntimeError, match="in place"):
        reg.run(tokens())
    assert n_hooks(tiny) == 0
    reg.remove("bad")
    reg.steer("boom", "mlp_out.1", lambda a, ctx: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        reg.generate(tokens(), max_new_tokens=3)
    assert n_hooks(tiny) == 0
    with pytest.raises(RuntimeError, match="already active"):
        with reg:
            with reg:
                pass
    assert n_hooks(tiny) == 0
    # registering while active installs at once and is removed on exit too
    reg.clear()
    with reg:
        reg.probe("late", "resid_mid.1")
        tiny(tokens())
        assert n_hooks(tiny) == 1
    assert n_hooks(tiny) == 0 and reg.records["late"].shape == (2, 7, 32)


def test_works_with_run_with_cache_and_tl_generate(tiny):
    v = torch.randn(32)
    reg = HookRegistry(tiny).steer("s", "resid_post.0", AddVector(v, 2.0))
    with reg:
        logits, _ = tiny.run_with_cache(tokens())
        out = tiny.generate(tokens(batch=1), max_new_tokens=3, verbose=False, use_past_kv_cache=True, stop_at_eos=False)
    ref = tiny.run_with_hooks(tokens(), fwd_hooks=[("blocks.0.hook_resid_post", lambda a, hook: a + 2.0 * v)])
    torch.testing.assert_close(logits, ref)
    assert out.shape == (1, 10)
    assert n_hooks(tiny) == 0


def test_works_with_saelens_hooked_sae_transformer():
    from sae_lens import HookedSAETransformer
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    base = tiny_model(gated=False)
    model = HookedSAETransformer(base.cfg)
    model.load_state_dict(base.state_dict())
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=64, metadata=SAEMetadata(hook_name="blocks.0.hook_resid_post")))
    model.add_sae(sae)
    reg = HookRegistry(model)
    reg.probe("feats", "blocks.0.hook_resid_post.hook_sae_acts_post", reduce="last")
    reg.probe("resid", "resid_post.0", reduce="last")
    reg.run(tokens())
    _, cache = model.run_with_cache(tokens())
    torch.testing.assert_close(reg.records["feats"], cache["blocks.0.hook_resid_post.hook_sae_acts_post"][:, -1])
    assert n_hooks(model) == 0


# ------------------------------------------------------------------ generation
@pytest.mark.parametrize("gated", [True, False])
def test_kv_cached_generation_matches_full_forward(gated):
    model = tiny_model(gated=gated)
    v = torch.randn(32, generator=torch.Generator().manual_seed(3))
    reg = HookRegistry(model).steer("s", "resid_mid.1", AddVector(v, 1.5))
    g = reg.generate(tokens(), max_new_tokens=6, stop_at_eos=False, return_logits=True)
    with reg:
        full = model(g.tokens[:, :-1])
    torch.testing.assert_close(g.logits, full[:, -6:], atol=1e-5, rtol=1e-4)
    assert n_hooks(model) == 0


@pytest.mark.parametrize("spec", ["generated", "prompt", 3, slice(2, 9, 3)])
def test_positions_during_generation_match_full_forward(tiny, spec):
    v = torch.randn(32, generator=torch.Generator().manual_seed(4))
    reg = HookRegistry(tiny).steer("s", "resid_post.0", AddVector(v, 2.0), positions=spec)
    prompt = tokens(pos=5)
    g = reg.generate(prompt, max_new_tokens=5, stop_at_eos=False, return_logits=True)
    # reference: a single forward with a hand-built mask in absolute positions
    n = g.tokens.shape[1] - 1
    pos = torch.arange(n)
    if spec == "generated":
        mask = pos >= 5
    elif spec == "prompt":
        mask = pos < 5
    elif spec == 3:
        mask = pos == 3
    else:
        mask = (pos >= 2) & (pos < 9) & ((pos - 2) % 3 == 0)

    def hook(a, hook):
        return a + 2.0 * v * mask[None, :, None]

    ref = tiny.run_with_hooks(g.tokens[:, :-1], fwd_hooks=[("blocks.0.hook_resid_post", hook)])
    torch.testing.assert_close(g.logits, ref[:, -5:], atol=1e-5, rtol=1e-4)


def test_left_padded_batch_generation_equals_rows_alone(tiny):
    rows = [[3, 4, 5, 6, 7, 8], [9, 10, 11]]
    v = torch.randn(32, generator=torch.Generator().manual_seed(5))
    reg = HookRegistry(tiny).steer("s", "resid_post.0", AddVector(v, 2.0), positions="generated")
    batch = reg.generate(
        pad_rows(rows, 0, padding_side="left"), max_new_tokens=5, stop_at_eos=False, return_logits=True
    )
    for b, r in enumerate(rows):
        alone = reg.generate(torch.tensor([r]), max_new_tokens=5, stop_at_eos=False, return_logits=True)
        assert batch.new_tokens[b].tolist() == alone.new_tokens[0].tolist()
        torch.testing.assert_close(batch.logits[b], alone.logits[0], atol=1e-4, rtol=1e-4)


def test_replace_edit_and_generation_probe(tiny):
    reg = HookRegistry(tiny)
    reg.steer("zero", "attn_out.0", Replace(torch.zeros(32)), positions="last")
    reg.probe("seen", "attn_out.0", positions="last", when="after")
    g = reg.generate(tokens(batch=1), max_new_tokens=3, stop_at_eos=False)
    assert g.new_tokens.shape == (1, 3)
    # one read per forward chunk: the last prompt token, then each new token (3 chunks)
    assert reg.records["seen"].shape == (1, 3, 32) and reg.records["seen"].abs().max() == 0


def test_generation_mixing_fast_and_hooked_attention_layers(tiny):
    """A probe on attn.z.1 sends layer 1 through TransformerLens' attention while layer 0 uses the
    fused kernel; logits still equal a full forward, and the probe reads once per forward chunk."""
    v = torch.randn(32, generator=torch.Generator().manual_seed(6))
    reg = HookRegistry(tiny)
    reg.steer("s", "resid_post.0", AddVector(v, 1.0))
    reg.probe("pat", "attn.z.1", positions="last")
    g = reg.generate(pad_rows([[1, 2, 3, 4], [5, 6]], 0), max_new_tokens=4, stop_at_eos=False, return_logits=True)
    pattern = reg.records["pat"]
    with reg:
        full = tiny(g.tokens[:, :-1], attention_mask=g.attention_mask[:, :-1])
    torch.testing.assert_close(g.logits, full[:, -4:], atol=1e-5, rtol=1e-4)
    assert pattern.shape == (2, 4, 4, 8)  # [batch, chunks, heads, d_head]


def test_attention_pattern_last_during_generation(tiny):
    """reduce='last' on a pattern, whose key axis grows each step, keeps the last step's read: the last
    fed token's pattern over every key, as run_with_cache computes it over the finished sequence."""
    batch = pad_rows([[1, 2, 3, 4, 5], [6, 7]], 0)
    reg = HookRegistry(tiny).probe("pat", "attn.pattern.1", reduce="last")
    g = reg.generate(batch, max_new_tokens=4, stop_at_eos=False)
    _, cache = tiny.run_with_cache(g.tokens[:, :-1], attention_mask=g.attention_mask[:, :-1])
    torch.testing.assert_close(reg.records["pat"], cache["blocks.1.attn.hook_pattern"][:, :, -1])


def test_attention_pattern_last_with_a_finished_row_is_a_clear_error(tiny):
    from architectures import TinyTokenizer

    tiny.tokenizer = TinyTokenizer(tiny.cfg.d_vocab)
    batch = pad_rows([[11, 12, 13, 14, 15], [16, 17]], 0)
    first = HookRegistry(tiny).generate(batch, max_new_tokens=4, stop_at_eos=False)
    tiny.tokenizer.eos_token_id = int(first.new_tokens[0, 0])  # row 0 stops at once
    if bool((first.new_tokens[1, :2] == tiny.tokenizer.eos_token_id).any()):
        pytest.skip("both rows would stop together")
    reg = HookRegistry(tiny).probe("pat", "attn.pattern.1", reduce="last")
    with pytest.raises(ValueError, match="reduce='last' read chunks of different shapes"):
        reg.generate(batch, max_new_tokens=4)
    assert n_hooks(tiny) == 0


def test_probe_only_run_skips_the_unembedding_unless_probed(tiny):
    fired = []
    handle = tiny.unembed.register_forward_pre_hook(lambda *a: fired.append("unembed"))
    try:
        HookRegistry(tiny).probe("p", "ln_final.hook_normalized").run(tokens())
        assert fired == []  # probes only, none in the unembedding: no logits computed
        reg = HookRegistry(tiny).probe("u", "unembed.hook_out", reduce="last")
        reg.run(tokens())
        assert fired == ["unembed"]
        torch.testing.assert_close(reg.records["u"], tiny(tokens())[:, -1])
    finally:
        handle.remove()


def test_token_id_inputs_are_validated(tiny):
    reg = HookRegistry(tiny).probe("p", "resid_post.0")
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 50\) \(cfg\.d_vocab\)"):
        reg.run(torch.tensor([[1, 2, 50]]))
    with pytest.raises(TypeError, match="token ids must be integers"):
        reg.run(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"only 0 \(padding\) and 1"):
        reg.run(torch.tensor([[1, 2]]), attention_mask=torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="padding_side must be one of"):
        reg.run(torch.tensor([[1, 2]]), padding_side="middle")
    with pytest.raises(TypeError, match="detach must be True or False"):
        inspect.unwrap(HookRegistry.probe)(reg, "q", "resid_post.0", detach="no")  # below the signature check
    with pytest.raises(ValueError, match="device must be a torch device"):
        reg.probe("q", "resid_post.0", device="gpu7")
    assert n_hooks(tiny) == 0
