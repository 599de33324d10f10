"""Probes read what TransformerLens' ``run_with_cache`` reads, on every architecture family: in one
padded forward (early-stopped when only probes are on) and chunk by chunk during KV-cached generation."""

import pytest
import torch
from architectures import ragged_prompts

from workbench import AddVector, HookRegistry


def _sites(model) -> list[str]:
    sites = ["resid_pre.0", "attn_out.0", "attn.z.0", "attn.pattern.1", "mlp.post.0", "mlp_out.1", "resid_post.1"]
    if not model.cfg.parallel_attn_mlp:
        sites.append("resid_mid.1")
    return sites


def _real(cache_act: torch.Tensor, mask: torch.Tensor, pos_dim: int) -> list[torch.Tensor]:
    """Per row, the activation at the row's real (unpadded) positions, positions first."""
    act = cache_act.movedim(pos_dim, 1)
    return [act[b][mask[b].bool()] for b in range(act.shape[0])]


def _close(got, want):
    torch.testing.assert_close(got, want, atol=1e-5 * max(1.0, float(want.abs().max())), rtol=1e-5)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_probes_equal_run_with_cache(arch_model, padding_side):
    from workbench.sites import Site

    batch = ragged_prompts(arch_model, padding_side=padding_side)
    _, cache = arch_model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
    reg = HookRegistry(arch_model)
    sites = _sites(arch_model)
    for s in sites:
        reg.probe(f"all:{s}", s)
        reg.probe(f"mean:{s}", s, reduce="mean")
        reg.probe(f"last:{s}", s, reduce="last")
    assert reg.run(batch) is None  # probes only: stops after the deepest probe
    for s in sites:
        site = Site.parse(s)
        want = _real(cache[site.hook_name], batch.attention_mask, site.pos_dim)
        got = reg.records[f"all:{s}"]
        for b, w in enumerate(want):
            _close(got[b], w)
        _close(reg.records[f"mean:{s}"], torch.stack([w.mean(0) for w in want]))
        _close(reg.records[f"last:{s}"], torch.stack([w[-1] for w in want]))


def test_probes_during_generation_equal_run_with_cache(arch_model):
    """A steered generation probed at every position reads, chunk by chunk, what one TransformerLens
    forward (with the same steer as a TL hook) caches over the finished sequences."""
    batch = ragged_prompts(arch_model)
    v = torch.randn(arch_model.cfg.d_model, generator=torch.Generator().manual_seed(7))
    reg = HookRegistry(arch_model).steer("s", "resid_post.0", AddVector(v, 2.0))
    reg.probe("h", "resid_post.1")
    reg.probe("z", "attn.z.1", reduce="last")
    reg.probe("mlp", "mlp.post.1", reduce="mean")
    gen = reg.generate(batch, 6)

    def hook(acts, hook):
        return acts + 2.0 * v

    # the last new token is sampled but never fed back, so the probes saw every column but the last
    tokens, mask = gen.tokens[:, :-1], gen.attention_mask[:, :-1]
    with arch_model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", hook)]):
        _, cache = arch_model.run_with_cache(tokens, attention_mask=mask)
    want_h = _real(cache["blocks.1.hook_resid_post"], mask, 1)
    got_h = reg.records["h"]
    for b, w in enumerate(want_h):
        _close(got_h[b], w)
    _close(reg.records["z"], torch.stack([w[-1] for w in _real(cache["blocks.1.attn.hook_z"], mask, 1)]))
    _close(reg.records["mlp"], torch.stack([w.mean(0) for w in _real(cache["blocks.1.mlp.hook_post"], mask, 1)]))
