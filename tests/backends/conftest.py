"""Fixtures of the backend tests: one tiny random Llama as a HookedTransformer and as a TransformerBridge."""

import pytest
from bridge_helpers import tiny_pair
from single_thread import one_thread_unless_embedded

_one_thread = pytest.fixture(autouse=True)(one_thread_unless_embedded)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(HookedTransformer, TransformerBridge) with the same weights (TransformerLens' conversion of one checkpoint)."""
    return tiny_pair(tmp_path_factory.mktemp("tiny_llama"))
