"""Lens figures: built from real lens results on a tiny model; arguments are checked."""

import plotly.graph_objects as go
import pytest
import torch

from workbench.lens import logit_lens
from workbench.plots.lens import kl_figure, lens_heatmap, target_curve


def test_lens_figures(tiny):
    res = logit_lens(tiny, torch.randint(0, 50, (1, 4)), targets=[1, 2])
    heat = lens_heatmap(res)
    assert isinstance(heat, go.Figure)
    assert heat.data[0].z.shape == (tiny.cfg.n_layers, 4)
    assert heat.data[0].text[0][0] == repr(res.top_tokens[0][0][0][0])[1:-1]
    fig = target_curve({"a": res, "b": res})
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    assert list(fig.data[0].y) == pytest.approx(res.target_probs[0, :, -1, 0].tolist())
    kl = kl_figure({"logit": torch.tensor([1.0, 0.5, 0.0]), "tuned": torch.tensor([0.5, 0.2, 0.0])})
    assert len(kl.data) == 2 and len(kl.data[0].y) == 2  # the last layer (KL 0) is left out


def test_lens_figures_check_arguments(tiny):
    res = logit_lens(tiny, torch.randint(0, 50, (1, 4)))
    with pytest.raises(ValueError, match="row"):
        lens_heatmap(res, row=1)
    with pytest.raises(ValueError, match="no targets"):
        target_curve(res)
    with pytest.raises(ValueError, match="at least one"):
        kl_figure({})
