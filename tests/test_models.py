import os
import subprocess
import sys

import pytest
import torch

from workbench import HookRegistry, chat_prompt, tiny_model
from workbench.models import cache_dir

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Les chats sont des animaux",
]


@pytest.mark.embedded
def test_parity_with_hugging_face_llama(embedded):
    """log p from our HookedTransformer equals HF LlamaForCausalLM on the same dequantised GGUF."""
    from workbench.models import load_hf_embedded

    hf, tok = load_hf_embedded()
    prompts = PROMPTS + [chat_prompt(embedded, "Name three fruits.")]
    worst = 0.0
    for p in prompts:
        ids = tok(p, return_tensors="pt").input_ids
        assert torch.equal(ids, embedded.to_tokens(p)), "tokenisation differs from the GGUF tokenizer"
        with torch.no_grad():
            ref = torch.log_softmax(hf(ids).logits.float(), -1)
            ours = torch.log_softmax(embedded(ids), -1)
        worst = max(worst, (ref - ours).abs().max().item())
    assert worst < 1e-3, f"max |Δ log p| = {worst}"


@pytest.mark.embedded
def test_embedded_config_and_chat_prompt(embedded):
    cfg = embedded.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_key_value_heads, cfg.d_mlp) == (30, 576, 9, 3, 1536)
    assert cfg.rotary_base == 100000 and cfg.normalization_type == "RMS" and cfg.gated_mlp
    p = chat_prompt(embedded, "Hi", system="Be brief.")
    assert p.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
    assert p.endswith("<|im_start|>assistant\n")
    assert (cache_dir() / "smollm2-135m-instruct").exists()
    with pytest.raises(ValueError, match="role"):
        chat_prompt(embedded, [{"role": "robot", "content": "x"}])


@pytest.mark.embedded
def test_kv_cached_steered_generation_matches_full_forward_on_embedded(embedded):
    """The issue's consistency check: steer all positions during KV-cached generation; the final
    step's logits equal one full forward over the generated sequence with the same steer."""
    from workbench import AddVector

    v = torch.randn(576, generator=torch.Generator().manual_seed(0))
    reg = HookRegistry(embedded).steer("s", "resid_post.12", AddVector(v, 4.0), positions="all")
    g = reg.generate(
        ["The weather today is", "My favourite food is"], max_new_tokens=8, stop_at_eos=False, return_logits=True
    )
    with reg:
        full = embedded(g.tokens[:, :-1], attention_mask=g.attention_mask[:, :-1])
    torch.testing.assert_close(g.logits[:, -1], full[:, -1], atol=2e-4, rtol=1e-4)
    # and steering changed the output distribution (the test can fail if the steer did nothing)
    plain = embedded(g.tokens[:, :-1], attention_mask=g.attention_mask[:, :-1])
    assert (plain[:, -1] - full[:, -1]).abs().max() > 1e-2


def test_other_names_go_to_from_pretrained_and_fail_clearly_offline():
    code = "from workbench.models import load_model\nload_model('gpt2')"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert "ModelLoadError" in out.stderr and "smollm2-135m-instruct" in out.stderr and "'gpt2'" in out.stderr


def test_tiny_model_is_llama_shaped_and_deterministic():
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    assert a.cfg.gated_mlp and a.cfg.normalization_type == "RMS" and a.cfg.n_key_value_heads == 2
    toks = torch.randint(0, 50, (1, 5))
    torch.testing.assert_close(a(toks), b(toks))
    assert tiny_model(gated=False).cfg.normalization_type == "LN"
