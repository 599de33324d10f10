"""Writing SAE feature dashboards: one HTML page per feature, an index, and one shared plotly.js.

The pages are built by :mod:`workbench.plots.dashboard`; this module only writes them, so they
work offline (plotly.js sits next to the pages instead of coming from a CDN).
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Optional, Union

from workbench.artifacts import save_text
from workbench.plots.dashboard import dashboard_index_html, feature_dashboard_html
from workbench.sae.tables import FeatureScores


def write_dashboards(
    model,
    sae,
    scores: FeatureScores,
    features: Iterable[int],
    out_dir: Union[str, Path],
    *,
    name: Optional[str] = None,
    n_contexts: int = 20,
) -> list[Path]:
    """Write ``feature_{i}.html`` for each feature, an ``index.html`` table linking them, and one
    ``plotly.min.js`` into ``out_dir``. Returns the page paths."""
    from plotly.offline import get_plotlyjs

    feats = [int(f) for f in features]
    if not feats:
        raise ValueError("no features to write dashboards for")
    pages = {f: feature_dashboard_html(model, sae, scores, f, name=name, n_contexts=n_contexts) for f in feats}
    index = dashboard_index_html(model, sae, scores, feats, name=name)
    out = Path(out_dir)
    js = out / "plotly.min.js"
    if not js.exists():
        save_text(js, get_plotlyjs())
    paths = []
    for f, text in pages.items():
        p = out / f"feature_{f}.html"
        save_text(p, text)
        paths.append(p)
    save_text(out / "index.html", index)
    return paths


__all__ = ["write_dashboards"]
