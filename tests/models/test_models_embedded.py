"""The embedded SmolLM2-135M-Instruct: the generic GGUF route against Hugging Face and against the
hand-built HookedTransformer of earlier versions (``smollm2_config`` + ``convert_llama_weights``)."""

import pytest
import torch

from workbench import HookRegistry, chat_prompt
from workbench.models import cache_dir, smollm2_config

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Les chats sont des animaux",
]


@pytest.fixture(scope="module")
def hf_embedded():
    from workbench.models import load_hf_embedded

    return load_hf_embedded()


@pytest.mark.embedded
def test_parity_with_hugging_face_llama(embedded, hf_embedded):
    """log p from our HookedTransformer equals HF LlamaForCausalLM on the same dequantised GGUF."""
    hf, tok = hf_embedded
    prompts = [*PROMPTS, chat_prompt(embedded, "Name three fruits.")]
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
def test_generic_route_reproduces_the_hand_built_model(embedded, hf_embedded):
    """Same logits (to 1e-5) as the HookedTransformer earlier versions built by hand: the config
    written out in ``smollm2_config`` and TransformerLens' ``convert_llama_weights``."""
    import warnings

    from transformer_lens import HookedTransformer
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    hf, tok = hf_embedded
    cfg = smollm2_config()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    ref.load_state_dict(convert_llama_weights(hf, cfg), strict=False)
    ref.eval()
    hand, ours = ref.cfg.to_dict(), embedded.cfg.to_dict()
    # fields that may differ: bookkeeping, and eps, which the GGUF stores as float32(1e-5)
    benign = {"tokenizer_name", "init_weights", "tokenizer_prepends_bos", "eps"}
    assert {k: (hand[k], ours.get(k)) for k in hand if k not in benign and hand[k] != ours.get(k)} == {}
    assert torch.tensor(ours["eps"], dtype=torch.float32) == torch.tensor(hand["eps"], dtype=torch.float32)
    worst = 0.0
    for p in [*PROMPTS, chat_prompt(embedded, "Name three fruits.")]:
        assert torch.equal(ref.to_tokens(p), embedded.to_tokens(p))
        ids = embedded.to_tokens(p)
        with torch.no_grad():
            worst = max(worst, (ref(ids) - embedded(ids)).abs().max().item())
    assert worst < 1e-5, f"max |Δ logit| = {worst}"


@pytest.mark.embedded
def test_embedded_config_and_chat_prompt(embedded):
    cfg = embedded.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_key_value_heads, cfg.d_mlp) == (30, 576, 9, 3, 1536)
    assert cfg.rotary_base == 100000 and cfg.normalization_type == "RMS" and cfg.gated_mlp
    assert cfg.model_name == "SmolLM2-135M-Instruct" and not cfg.default_prepend_bos
    p = chat_prompt(embedded, "Hi", system="Be brief.")
    assert p.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
    assert p.endswith("<|im_start|>assistant\n")
    assert (cache_dir() / "smollm2-135m-instruct" / "v2" / "model.safetensors").exists()
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
