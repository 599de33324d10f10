"""The gallery page renders every figure in headless Chromium."""

import plotly.graph_objects as go
import pytest

from workbench.experiments.export import chromium_path, save_figure
from workbench.experiments.gallery import GalleryEntry, rendered_in_browser, write_gallery
from workbench.plots.style import style


@pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium (make test installs it)")
def test_gallery_renders_every_figure(tmp_path):
    entries = []
    for i in range(3):
        fig = style(go.Figure(go.Bar(x=["a", "b"], y=[i, i + 1])), title=f"fig {i}", x="x (unit)", y="y (unit)")
        written = save_figure(fig, f"fig{i}", directory=tmp_path)
        assert set(written) == {"html", "png", "svg"} and all(p.stat().st_size > 0 for p in written.values())
        entries.append(GalleryEntry(f"fig{i}", f"Figure {i}", "a bar chart", f"make fig {i}", {"value": str(i)}))
    entries.append(GalleryEntry("absent", "Absent", "never written", "none"))
    index = write_gallery(entries, tmp_path)
    status = rendered_in_browser(index)
    assert status == {"fig0": "yes", "fig1": "yes", "fig2": "yes"}  # 'absent' has no image at all


def test_bad_entries_and_figures(tmp_path):
    with pytest.raises(ValueError):
        write_gallery([], tmp_path)
    with pytest.raises(ValueError):
        GalleryEntry("a/b", "t", "c", "cmd")
    with pytest.raises(TypeError):
        save_figure({"data": []}, "x", directory=tmp_path)
    with pytest.raises(ValueError, match="formats"):
        save_figure(go.Figure(), "x", directory=tmp_path, formats=("gif",))
