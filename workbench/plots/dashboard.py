"""Feature dashboards as HTML strings: one self-contained page per SAE feature, and an index.

A page shows the feature's scores (input ``S_in`` and output ``S_out``, Arad, Mueller & Belinkov 2025),
its max activation and firing frequency, the logit lens (top and bottom tokens of the model's
readout of ``d_i``), a histogram of its activations over the corpus, and its top-activating
contexts with each token shaded by the feature's activation and the max-activating token outlined.
Nothing is written here; :func:`workbench.experiments.sae_dashboard.write_dashboards` writes the
pages, the index and one shared copy of plotly.js.
"""

import html
import math
from collections.abc import Sequence
from typing import Optional

from ..sae.loading import sae_label
from ..sae.tables import FeatureScores
from ..sae.top_examples import TopExamples
from ..tokens import token_strings
from .sae import activation_histogram_figure, logit_lens_figure, visible

CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
h1 { font-size: 22px; margin-bottom: 4px; } .sub { color: #666; margin-top: 0; }
table.scores { border-collapse: collapse; margin: 12px 0; } table.scores td { padding: 3px 12px 3px 0; }
table.scores td:first-child { color: #666; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; }
.ctx { font-family: monospace; font-size: 13px; line-height: 1.9; white-space: pre-wrap;
       border-bottom: 1px solid #eee; }
.ctx span { padding: 1px 0; } .ctx span.max { outline: 2px solid #b00; }
.ctx .act { display: inline-block; width: 52px; color: #666; }
.empty { color: #888; } a { color: #0072B2; }
"""


def _token_text(model, token: int) -> str:
    return visible(token_strings(model, [token])[0])


def _score(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(v) else f"{v:.4g}"


def _check_feature(feature: int, d_sae: int) -> None:
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < d_sae:
        raise IndexError(f"feature must be an int in 0..{d_sae - 1}, got {feature!r}")


def contexts_html(examples: TopExamples, feature: int, model=None, *, n: int = 20) -> str:
    """The top ``n`` activating contexts as HTML: a window of tokens around the max-activating token
    (outlined), each shaded by activation / the feature's max activation."""
    _check_feature(feature, examples.values.shape[0])
    vmax = float(examples.max_activation[feature]) or 1.0
    out = []
    for j in range(min(n, examples.values.shape[1])):
        v = float(examples.values[feature, j])
        if v <= 0:
            break
        row, pos = int(examples.row[feature, j]), int(examples.position[feature, j])
        acts = examples.window[feature, j]
        spans = []
        for col, off in enumerate(range(-examples.window_before, examples.window_after + 1)):
            p = pos + off
            if not 0 <= p < examples.tokens.shape[1]:
                continue
            a = float(acts[col])
            a = 0.0 if math.isnan(a) else a
            text = html.escape(_token_text(model, int(examples.tokens[row, p])))
            alpha = min(1.0, max(0.0, a / vmax))
            cls = ' class="max"' if off == 0 else ""
            spans.append(f'<span{cls} style="background: rgba(230,120,0,{alpha:.2f})" title="{a:.3g}">{text}</span>')
        out.append(f'<div class="ctx"><span class="act">{v:.2f}</span> {"".join(spans)}</div>')
    if not out:
        return '<p class="empty">This feature did not fire on the corpus.</p>'
    return "\n".join(out)


def _lens_tokens_text(model, scores: FeatureScores, feature: int, n: int) -> str:
    ids = [t for t in scores.lens.top_tokens[feature, :n].tolist() if t >= 0]
    return html.escape(" ".join(repr(_token_text(model, t)) for t in ids))


def feature_dashboard_html(
    model,
    sae,
    scores: FeatureScores,
    feature: int,
    *,
    name: Optional[str] = None,
    n_contexts: int = 20,
    plotly_js: str = "plotly.min.js",
) -> str:
    """The HTML page of one feature (plotly.js loaded from ``plotly_js``, a path or URL)."""
    if scores.examples is None:
        raise ValueError("the dashboard needs top examples: compute scores with input scores (with_input=True)")
    d_sae = sae.cfg.d_sae
    _check_feature(feature, d_sae)
    if len(scores.table) != d_sae:
        raise ValueError(f"the score table has {len(scores.table)} rows but the SAE has {d_sae} features")
    row = scores.table.iloc[feature]
    ex = scores.examples
    label = name or sae_label(sae)
    figs = [logit_lens_figure(scores.lens, feature, model), activation_histogram_figure(ex, feature)]
    fig_html = "".join(f"<div>{f.to_html(full_html=False, include_plotlyjs=False)}</div>" for f in figs)
    freq = float(row["fire_frequency"])
    facts = [
        ("output score S_out", _score(row["output_score"])),
        ("input score S_in", _score(row["input_score"]) + f" (over {int(row['n_examples'])} top examples)"),
        ("max activation", _score(row["max_activation"])),
        ("firing frequency", f"{freq:.3%}" if not math.isnan(freq) else "—"),
        ("logit-lens top tokens", _lens_tokens_text(model, scores, feature, 10)),
    ]
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in facts)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(label)} · feature {feature}</title>
<script src="{html.escape(plotly_js)}"></script><style>{CSS}</style></head>
<body>
<p><a href="index.html">← all features</a></p>
<h1>Feature {feature}</h1>
<p class="sub">{html.escape(label)} · {d_sae} features</p>
<table class="scores">{rows}</table>
<div class="figs">{fig_html}</div>
<h2>Top-activating contexts</h2>
<p class="sub">Shading: activation / max activation ({_score(row["max_activation"])}); the outlined token is the
context's max. {ex.window_before} tokens before and {ex.window_after} after; ↵ is a newline.</p>
{contexts_html(ex, feature, model, n=n_contexts)}
</body></html>
"""


def dashboard_index_html(
    model, sae, scores: FeatureScores, features: Sequence[int], *, name: Optional[str] = None
) -> str:
    """The index page: one linked row per feature with its scores and logit-lens tokens."""
    lines = []
    for f in features:
        _check_feature(f, sae.cfg.d_sae)
        r = scores.table.iloc[f]
        lines.append(
            f'<tr><td><a href="feature_{f}.html">{f}</a></td><td>{_score(r["output_score"])}</td>'
            f"<td>{_score(r['input_score'])}</td><td>{_score(r['max_activation'])}</td>"
            f'<td class="t">{_lens_tokens_text(model, scores, f, 6)}</td></tr>'
        )
    label = html.escape(name or sae_label(sae))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{label} · features</title><style>{CSS}
td, th {{ padding: 3px 14px 3px 0; text-align: left; }} td.t {{ font-family: monospace; }}</style></head>
<body><h1>{label}</h1><p class="sub">{len(lines)} feature dashboards</p>
<table><tr><th>feature</th><th>S_out</th><th>S_in</th><th>max act.</th><th>logit-lens tokens</th></tr>
{"".join(lines)}</table></body></html>
"""


__all__ = ["contexts_html", "dashboard_index_html", "feature_dashboard_html"]
