"""load_model's routing and argument checks: hub names go to TransformerLens' from_pretrained,
paths to the local-checkpoint loader, bad arguments fail up front naming the bad value."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_checkpoints import write_checkpoint
from transformer_lens import HookedTransformer

from workbench.models import EMBEDDED_MODEL, ModelLoadError, load_model, tiny_model


def test_hub_names_are_forwarded_to_from_pretrained(monkeypatch):
    calls = []
    model = tiny_model()

    def fake(name, **kwargs):
        calls.append((name, kwargs))
        return model

    monkeypatch.setattr(HookedTransformer, "from_pretrained", fake)
    assert load_model("gpt2", device="cpu", dtype=torch.float64, fold_ln=False, default_prepend_bos=True) is model
    assert calls == [("gpt2", {"device": "cpu", "dtype": torch.float64, "fold_ln": False, "default_prepend_bos": True})]
    load_model("EleutherAI/pythia-70m")  # an official name with an organisation is a name, not a path
    assert calls[-1] == ("EleutherAI/pythia-70m", {"device": "cpu", "dtype": torch.float32})


def test_offline_hub_errors_are_model_load_errors_naming_the_embedded_default(monkeypatch):
    def offline(name, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(HookedTransformer, "from_pretrained", offline)
    with pytest.raises(ModelLoadError) as err:
        load_model("gpt2")
    msg = str(err.value)
    assert "'gpt2'" in msg and f"load_model('{EMBEDDED_MODEL}')" in msg and "OSError" in msg
    assert isinstance(err.value.__cause__, OSError)


def test_other_names_go_to_from_pretrained_and_fail_clearly_offline():
    """The real thing, with the hub switched off: TransformerLens' own from_pretrained fails, and the
    error is a ModelLoadError naming the embedded default."""
    code = "from workbench.models import load_model\nload_model('gpt2')"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert "ModelLoadError" in out.stderr and "smollm2-135m-instruct" in out.stderr and "'gpt2'" in out.stderr


def test_unknown_names_say_they_are_neither_a_path_nor_a_model_name(monkeypatch):
    monkeypatch.setattr(HookedTransformer, "from_pretrained", lambda *a, **k: pytest.fail("must not be called"))
    with pytest.raises(ModelLoadError, match=r"'my-org/my-model' is neither an existing local path nor a model name"):
        load_model("my-org/my-model")


def test_paths_go_to_the_checkpoint_loader(tmp_path, monkeypatch):
    monkeypatch.setattr(HookedTransformer, "from_pretrained", lambda *a, **k: pytest.fail("must not be called"))
    write_checkpoint(tmp_path / "gpt2", "GPT2LMHeadModel")
    for p in (tmp_path / "gpt2", str(tmp_path / "gpt2")):
        assert load_model(p).cfg.original_architecture == "GPT2LMHeadModel"
    monkeypatch.chdir(tmp_path)
    assert load_model("gpt2").cfg.d_model == 32  # an existing directory wins over the hub name, as in transformers
    assert load_model(Path("gpt2")).cfg.d_model == 32


def test_from_pretrained_keywords_are_refused_for_local_and_embedded_models(tmp_path):
    write_checkpoint(tmp_path, "GPT2LMHeadModel")
    with pytest.raises(TypeError, match=r"fold_ln go to HookedTransformer.from_pretrained.*a local checkpoint"):
        load_model(tmp_path, fold_ln=True)
    with pytest.raises(TypeError, match=r"center_unembed.*the embedded model"):
        load_model(center_unembed=False)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name_or_path": 3}, TypeError, r"name_or_path must be a model name \(str\) or a path.*got 3 \(int\)"),
        ({"name_or_path": "  "}, ValueError, r"non-empty model name or path, got '  '"),
        ({"dtype": "float32"}, TypeError, r"dtype must be a torch.dtype such as torch.float32, got 'float32'"),
        ({"dtype": torch.int64}, ValueError, r"dtype must be one of .*got torch.int64"),
        ({"device": "gpu"}, ValueError, r"device 'gpu' is not a torch device string"),
        ({"device": 0}, TypeError, r"device must be a str or torch.device, got 0 \(int\)"),
        ({"default_prepend_bos": 1}, TypeError, r"default_prepend_bos must be True, False or None, got 1"),
    ],
)
def test_bad_arguments_fail_up_front_naming_the_value(kwargs, error, match, monkeypatch):
    monkeypatch.setattr(HookedTransformer, "from_pretrained", lambda *a, **k: pytest.fail("must not be called"))
    kwargs = {"name_or_path": "gpt2", **kwargs}
    # our own checks, below the signature's runtime type check (jaxtyping's hook in the tests) that fires first
    with pytest.raises(error, match=match):
        inspect.unwrap(load_model)(kwargs.pop("name_or_path"), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_an_absent_accelerator_is_named(tmp_path):
    write_checkpoint(tmp_path, "GPT2LMHeadModel")
    with pytest.raises(ValueError, match=r"device 'cuda:1' needs CUDA, but torch.cuda.is_available\(\) is False"):
        load_model(tmp_path, device="cuda:1")


def test_device_reaches_the_model(tmp_path):
    """The device argument is the model's device (on this CPU-only machine: a torch.device('cpu'))."""
    write_checkpoint(tmp_path, "LlamaForCausalLM")
    model = load_model(tmp_path, device=torch.device("cpu"))
    assert model.cfg.device == "cpu" and {p.device.type for p in model.parameters()} == {"cpu"}
