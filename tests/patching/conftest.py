import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_for_tiny_models(request):
    """Tiny models run 10-20x faster on one thread when the 2 cores are shared (measured: a gemma2-shaped
    forward takes 100 ms with 2 contended threads, 5 ms with one); embedded-model tests keep every thread."""
    if request.node.get_closest_marker("embedded"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
