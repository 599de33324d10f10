import os

# Shapes written in signatures are checked while the tests run: jaxtyping's import hook wraps every
# annotated function of workbench in beartype (set WORKBENCH_TYPECHECK=0 to switch it off).
if os.environ.get("WORKBENCH_TYPECHECK", "1") == "1":
    from jaxtyping import install_import_hook

    install_import_hook("workbench", "beartype.beartype")

import pytest
import torch

torch.set_grad_enabled(True)


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct (converted once, then loaded from the safetensors cache)."""
    from workbench.models import load_model

    return load_model()


@pytest.fixture()
def tiny():
    from workbench.models import tiny_model

    return tiny_model()


@pytest.fixture(scope="session", autouse=True)
def _small_budget():
    os.environ.setdefault("WORKBENCH_BUDGET", "small")
    yield
