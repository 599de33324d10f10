"""Fixtures of the architecture matrix: one tiny random model per family (see tests/architectures.py)."""

import pytest
from architectures import FAMILIES, family_model


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    """Each family name in turn."""
    return request.param


@pytest.fixture()
def arch_model(family):
    """A fresh tiny model of the current family (eval, no grad on parameters)."""
    return family_model(family)


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine every parallel
    region of a tiny op can wait a scheduler tick for the second thread: run the matrix on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
