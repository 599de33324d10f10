import inspect

import pytest
import torch

from workbench.models import ChatMessage, chat_prompt, tiny_model


def test_tiny_model_is_llama_shaped_and_deterministic():
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    assert a.cfg.gated_mlp and a.cfg.normalization_type == "RMS" and a.cfg.n_key_value_heads == 2
    toks = torch.randint(0, 50, (1, 5))
    torch.testing.assert_close(a(toks), b(toks))
    assert tiny_model(gated=False).cfg.normalization_type == "LN"


def test_tiny_model_takes_device_and_dtype():
    m = tiny_model(dtype=torch.float64, device=torch.device("cpu"))
    assert m.cfg.dtype == torch.float64 and m.W_E.dtype == torch.float64 and m.cfg.device == "cpu"
    toks = torch.randint(0, 50, (1, 5))
    assert m(toks).dtype == torch.float64
    torch.testing.assert_close(m(toks), tiny_model(dtype=torch.float64)(toks))
    # our own check, below the signature's runtime type check (jaxtyping's hook in the tests) that fires first
    with pytest.raises(TypeError, match=r"dtype must be a torch\.dtype"):
        inspect.unwrap(tiny_model)(dtype="float64")


def test_chat_prompt_needs_a_chat_template_and_valid_roles():
    with pytest.raises(ValueError, match="chat template"):
        chat_prompt(tiny_model(), "hi")
    with pytest.raises(ValueError, match="role"):
        ChatMessage("robot", "x")
