import os

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
