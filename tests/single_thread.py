"""A fixture body for test folders of tiny models: one torch thread per test.

Tiny models run 10-20x faster on one thread when the 2 cores are shared (measured: a gemma2-shaped
forward takes 100 ms with 2 contended threads, 5 ms with one). Tests marked ``embedded`` keep every
thread. Use from a folder's conftest.py::

    from single_thread import one_thread_unless_embedded

    _one_thread = pytest.fixture(autouse=True)(one_thread_unless_embedded)
"""

import torch


def one_thread_unless_embedded(request):
    if request.node.get_closest_marker("embedded"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
