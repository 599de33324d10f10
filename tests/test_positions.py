import pytest
import torch

from workbench.positions import Positions, resolve_positions

# Row 0: 5 real tokens; row 1: 2 pads then 3 real tokens (left padding). Prompt lengths 4 and 2.
ABS = torch.tensor([[0, 1, 2, 3, 4], [-1, -1, 0, 1, 2]])
SEQ = torch.tensor([5, 3])
PROMPT = torch.tensor([4, 2])


def sel(spec):
    m = resolve_positions(Positions.parse(spec), ABS, SEQ, PROMPT)
    return [[int(x) for x in row] for row in m]


def test_named():
    assert sel("all") == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert sel("last") == [[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]
    assert sel("prompt") == [[1, 1, 1, 1, 0], [0, 0, 1, 1, 0]]
    assert sel("generated") == [[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]


def test_indices_slices_lists_masks():
    assert sel(0) == [[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]]
    assert sel(-2) == [[0, 0, 0, 1, 0], [0, 0, 0, 1, 0]]
    assert sel(slice(1, None)) == [[0, 1, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert sel(slice(None, None, 2)) == [[1, 0, 1, 0, 1], [0, 0, 1, 0, 1]]
    assert sel([0, -1]) == [[1, 0, 0, 0, 1], [0, 0, 1, 0, 1]]
    assert sel(torch.tensor([False, True, True])) == [[0, 1, 1, 0, 0], [0, 0, 0, 1, 1]]


def test_chunk_of_one_token_uses_absolute_positions():
    # KV-cached step: one new column at absolute position 6 (row 0) and 4 (row 1)
    abs_pos, seq = torch.tensor([[6], [4]]), torch.tensor([7, 5])
    m = resolve_positions(Positions.parse("generated"), abs_pos, seq, PROMPT)
    assert m.tolist() == [[True], [True]]
    m = resolve_positions(Positions.parse(6), abs_pos, seq, PROMPT)
    assert m.tolist() == [[True], [False]]


@pytest.mark.parametrize(
    "bad,err",
    [
        ("first", ValueError),
        (True, TypeError),
        ([], ValueError),
        ([1.5], TypeError),
        (slice(0, 3, -1), ValueError),
        (torch.zeros(3), TypeError),
        (3.0, TypeError),
    ],
)
def test_bad_specs(bad, err):
    with pytest.raises(err):
        Positions.parse(bad)
