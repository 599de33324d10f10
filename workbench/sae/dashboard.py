"""Feature dashboards: one self-contained HTML page per SAE feature.

A page shows the feature's scores (input ``S_in`` and output ``S_out``, Arad, Mueller & Belinkov 2025),
its max activation and firing frequency, the logit lens (top and bottom tokens of
``W_U · LN_f(d_i)``), a histogram of its activations over the corpus, and its top-activating
contexts with each token shaded by the feature's activation and the max-activating token outlined.
The figure functions return plotly figures; :func:`write_dashboards` writes the pages, an index,
and one shared copy of plotly.js (so pages work offline).
"""

import html
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Optional, Union

import plotly.graph_objects as go

from ..plots.style import PALETTE, style
from .loading import sae_label
from .scores import FeatureScores, LogitLens, TopExamples


def _tok_str(tokenizer, i: int) -> str:
    if tokenizer is None:
        return f"<{i}>"
    return tokenizer.decode([int(i)])


def _visible(text: str) -> str:
    return text.replace("\n", "↵").replace("\t", "⇥") if text.strip() else repr(text)[1:-1] or "∅"


def logit_lens_figure(
    lens: LogitLens, feature: int, tokenizer=None, *, n_top: int = 15, n_bottom: int = 10
) -> go.Figure:
    """Horizontal bars: the feature's top-``n_top`` logit-lens tokens (logit of ``W_U · LN_f(d_i)``)
    and its ``n_bottom`` most suppressed tokens."""
    top_ids = lens.top_tokens[feature, :n_top].tolist()
    top_vals = lens.top_logits[feature, :n_top].tolist()
    bot_ids = lens.bottom_tokens[feature, :n_bottom].tolist()
    bot_vals = lens.bottom_logits[feature, :n_bottom].tolist()
    labels = [f"{_visible(_tok_str(tokenizer, t))!r} ({t})" for t in top_ids + bot_ids]
    colours = [PALETTE[0]] * len(top_ids) + [PALETTE[3]] * len(bot_ids)
    fig = go.Figure(
        go.Bar(
            x=top_vals + bot_vals,
            y=labels,
            orientation="h",
            marker_color=colours,
            hovertemplate="%{y}<br>logit %{x:.2f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", tickfont=dict(family="monospace", size=11))
    fig.add_vline(x=0, line_color="#888", line_width=1)
    return style(
        fig,
        title=f"Feature {feature}: logit lens (top {len(top_ids)}, bottom {len(bot_ids)})",
        x="logit of W_U · LN_f(d_i)",
        y="token",
        width=520,
        height=max(360, 22 * len(labels) + 120),
    )


def activation_histogram_figure(examples: TopExamples, feature: int) -> go.Figure:
    """Counts of the feature's non-zero activations over the corpus, in log-spaced bins (log x)."""
    counts = examples.hist_counts[feature].double()
    edges = examples.hist_edges.double()
    centres = (edges[:-1] * edges[1:]).sqrt()
    keep = counts > 0
    fig = go.Figure(
        go.Bar(
            x=centres[keep].tolist(),
            y=counts[keep].tolist(),
            width=(edges[1:] - edges[:-1])[keep].tolist(),
            marker_color=PALETTE[2],
            hovertemplate="activation ≈ %{x:.3g}<br>%{y} tokens<extra></extra>",
        )
    )
    fig.update_xaxes(type="log")
    n = int(examples.fire_count[feature])
    freq = n / max(examples.n_tokens, 1)
    return style(
        fig,
        title=f"Feature {feature}: activations > 0 on {n:,} of {examples.n_tokens:,} tokens ({freq:.2%})",
        x="activation (log scale)",
        y="tokens",
        width=520,
        height=360,
    )


def contexts_html(examples: TopExamples, feature: int, tokenizer=None, *, n: int = 20) -> str:
    """The top ``n`` activating contexts as HTML: a window of tokens around the max-activating token
    (outlined), each shaded by activation / the feature's max activation."""
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
            tok = int(examples.tokens[row, p])
            text = html.escape(_visible(_tok_str(tokenizer, tok)))
            alpha = min(1.0, max(0.0, a / vmax))
            cls = ' class="max"' if off == 0 else ""
            spans.append(f'<span{cls} style="background: rgba(230,120,0,{alpha:.2f})" title="{a:.3g}">{text}</span>')
        out.append(f'<div class="ctx"><span class="act">{v:.2f}</span> {"".join(spans)}</div>')
    if not out:
        return '<p class="empty">This feature did not fire on the corpus.</p>'
    return "\n".join(out)


_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
h1 { font-size: 22px; margin-bottom: 4px; } .sub { color: #666; margin-top: 0; }
table.scores { border-collapse: collapse; margin: 12px 0; } table.scores td { padding: 3px 12px 3px 0; }
table.scores td:first-child { color: #666; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; }
.ctx { font-family: monospace; font-size: 13px; line-height: 1.9; white-space: pre-wrap; border-bottom: 1px solid #eee; }
.ctx span { padding: 1px 0; } .ctx span.max { outline: 2px solid #b00; }
.ctx .act { display: inline-block; width: 52px; color: #666; }
.empty { color: #888; } a { color: #0072B2; }
"""


def _score(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(v) else f"{v:.4g}"


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
    if not isinstance(feature, int) or not 0 <= feature < d_sae:
        raise IndexError(f"feature must be an int in 0..{d_sae - 1}, got {feature!r}")
    tok = getattr(model, "tokenizer", None)
    row = scores.table.iloc[feature]
    ex = scores.examples
    label = name or sae_label(sae)
    figs = [logit_lens_figure(scores.lens, feature, tok), activation_histogram_figure(ex, feature)]
    fig_html = "".join(f"<div>{f.to_html(full_html=False, include_plotlyjs=False)}</div>" for f in figs)
    facts = [
        ("output score S_out", _score(row["output_score"])),
        ("input score S_in", _score(row["input_score"]) + f" (over {int(row['n_examples'])} top examples)"),
        ("max activation", _score(row["max_activation"])),
        (
            "firing frequency",
            f"{float(row['fire_frequency']):.3%}" if not math.isnan(float(row["fire_frequency"])) else "—",
        ),
        (
            "logit-lens top tokens",
            html.escape(
                " ".join(repr(_visible(_tok_str(tok, t))) for t in scores.lens.top_tokens[feature, :10].tolist())
            ),
        ),
    ]
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in facts)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(label)} · feature {feature}</title>
<script src="{html.escape(plotly_js)}"></script><style>{_CSS}</style></head>
<body>
<p><a href="index.html">← all features</a></p>
<h1>Feature {feature}</h1>
<p class="sub">{html.escape(label)} · {d_sae} features</p>
<table class="scores">{rows}</table>
<div class="figs">{fig_html}</div>
<h2>Top-activating contexts</h2>
<p class="sub">Shading: activation / max activation ({_score(row["max_activation"])}); the outlined token is the context's max.
{ex.window_before} tokens before and {ex.window_after} after; ↵ is a newline.</p>
{contexts_html(ex, feature, tok, n=n_contexts)}
</body></html>
"""


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
    ``plotly.min.js``. Returns the page paths."""
    from plotly.offline import get_plotlyjs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "plotly.min.js"
    if not js.exists():
        js.write_text(get_plotlyjs(), encoding="utf-8")
    feats = [int(f) for f in features]
    if not feats:
        raise ValueError("no features to write dashboards for")
    paths = []
    for f in feats:
        p = out / f"feature_{f}.html"
        p.write_text(feature_dashboard_html(model, sae, scores, f, name=name, n_contexts=n_contexts), encoding="utf-8")
        paths.append(p)
    tok = getattr(model, "tokenizer", None)
    lines = []
    for f in feats:
        r = scores.table.iloc[f]
        toks = html.escape(" ".join(repr(_visible(_tok_str(tok, t))) for t in scores.lens.top_tokens[f, :6].tolist()))
        lines.append(
            f'<tr><td><a href="feature_{f}.html">{f}</a></td><td>{_score(r["output_score"])}</td>'
            f'<td>{_score(r["input_score"])}</td><td>{_score(r["max_activation"])}</td><td class="t">{toks}</td></tr>'
        )
    label = html.escape(name or sae_label(sae))
    (out / "index.html").write_text(
        f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{label} · features</title><style>{_CSS}
td, th {{ padding: 3px 14px 3px 0; text-align: left; }} td.t {{ font-family: monospace; }}</style></head>
<body><h1>{label}</h1><p class="sub">{len(feats)} feature dashboards</p>
<table><tr><th>feature</th><th>S_out</th><th>S_in</th><th>max act.</th><th>logit-lens tokens</th></tr>
{"".join(lines)}</table></body></html>
""",
        encoding="utf-8",
    )
    return paths
