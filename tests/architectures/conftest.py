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
