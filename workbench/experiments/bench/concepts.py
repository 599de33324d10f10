"""Benchmark of the concept module: extraction throughput against a bare forward pass on the same
texts (same batches, same padding), and the wall time of the steering bake-off.

Baselines measured in the same run: ``model(tokens)`` over the full depth (what a naive extractor
with ``run_with_cache`` pays), and ``model(tokens, stop_at_layer=L+1)`` (the cheapest possible pass
that reaches the site). ``extract`` should be close to the second and faster than the first.
"""

import statistics
import time

import torch

from workbench.concepts.bakeoff import BakeoffConfig, run_bakeoff
from workbench.concepts.data import load_concept
from workbench.concepts.extract import extract
from workbench.models import load_model
from workbench.tokens import encode, tokenize


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_concepts_bench(
    *, n_texts: int = 64, layer: int = 8, repeats: int = 2, batch_size: int = 16, bakeoff_budget: str = "small"
) -> dict:
    if n_texts < 1 or repeats < 1:
        raise ValueError(f"n_texts and repeats must be >= 1, got {n_texts} and {repeats}")
    model = load_model()
    data = load_concept("sentiment").train
    texts = (data.texts * (n_texts // len(data) + 1))[:n_texts]
    # the same length-sorted batches extract uses, so padding is identical
    texts = sorted(texts, key=lambda t: len(encode(model, t)))
    batches = [tokenize(model, texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    n_tokens = int(sum(int(b.attention_mask.sum()) for b in batches))
    site = f"resid_post.{layer}"

    def bare(stop=None):
        with torch.no_grad():
            for b in batches:
                model(b.tokens, attention_mask=b.attention_mask, stop_at_layer=stop)

    extract(model, texts[:batch_size], site, "mean", progress=False)  # warm-up
    t_full = _median_time(lambda: bare(None), repeats)
    t_stop = _median_time(lambda: bare(layer + 1), repeats)
    t_extract = _median_time(
        lambda: extract(model, texts, site, "mean", batch_size=batch_size, progress=False), repeats
    )
    config = BakeoffConfig.for_budget(bakeoff_budget)
    t = time.perf_counter()
    result = run_bakeoff(model, config, progress=False)
    t_bakeoff = time.perf_counter() - t
    return {
        "n_texts": n_texts,
        "n_tokens": n_tokens,
        "site": site,
        "layers": model.cfg.n_layers,
        "full_forward_tok_s": n_tokens / t_full,
        "stop_at_layer_tok_s": n_tokens / t_stop,
        "extract_tok_s": n_tokens / t_extract,
        "bakeoff_budget": bakeoff_budget,
        "bakeoff_seconds": t_bakeoff,
        "bakeoff_conditions": len(result.table),
        "bakeoff_generated_rows": len(result.completions),
        "bakeoff_winner": result.winner,
    }


def print_results(r: dict, console) -> None:
    from rich.table import Table

    t = Table(
        title=f"concept extraction: {r['n_texts']} texts, {r['n_tokens']} tokens, "
        f"site {r['site']} of {r['layers']} layers"
    )
    t.add_column("pass")
    t.add_column("tokens/s", justify="right")
    t.add_column("× full forward", justify="right")
    for name, key in (
        ("bare forward, all layers (baseline)", "full_forward_tok_s"),
        ("bare forward, stop_at_layer", "stop_at_layer_tok_s"),
        ("extract (registry probes)", "extract_tok_s"),
    ):
        t.add_row(name, f"{r[key]:.0f}", f"{r[key] / r['full_forward_tok_s']:.2f}")
    console.print(t)
    b = Table(title="bake-off wall time")
    for c in ("budget", "conditions", "generated completions", "seconds", "winner"):
        b.add_column(c)
    b.add_row(
        r["bakeoff_budget"],
        str(r["bakeoff_conditions"]),
        str(r["bakeoff_generated_rows"]),
        f"{r['bakeoff_seconds']:.1f}",
        r["bakeoff_winner"],
    )
    console.print(b)
