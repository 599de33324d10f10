import pytest
from single_thread import one_thread_unless_embedded

_one_thread = pytest.fixture(autouse=True)(one_thread_unless_embedded)
