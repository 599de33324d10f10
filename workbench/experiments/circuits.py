"""The circuit runner behind ``workbench circuit --task ioi``: direct logit attribution, induction
heads, path patching and an edge-level circuit with its faithfulness curve on one task, writing
figures (``save_figure``) and a JSON summary (``workbench.artifacts.save_json``).

Steps (each one also usable on its own; every step returns plain data for the summary):

1. ``dla_step``: DLA of every head/MLP on the clean prompts (last position) → layer × head heatmap,
   accumulated-residual line, top heads.
2. ``heads_step``: previous-token / duplicate-token / induction scores on repeated random tokens →
   score maps, the induction heads (score > 0.4) and their attention on one repeated sequence.
3. ``path_step``: path patching of every head into the logits (the heads that write the answer),
   then of every head into the queries of the top ``receivers`` heads; sender × receiver matrix.
4. ``edges_step``: EAP, EAP-IG and EAP-RelP scores of every edge (timed), the faithfulness curve of
   their top-k circuits against random edges, the circuit graph of the best method.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch

from workbench.artifacts import save_json
from workbench.circuits import (
    Graph,
    attention_patterns,
    default_ks,
    dla_task,
    edge_scores,
    faithfulness_curve,
    induction_scores,
    path_patch,
    path_patch_matrix,
    repeated_random_tokens,
)
from workbench.experiments.export import save_figure
from workbench.patching.tasks import build_task, check_task, make_metric
from workbench.paths import figures_dir, results_dir
from workbench.plots.circuits import (
    accumulated_figure,
    attention_figure,
    circuit_figure,
    dla_heatmap,
    faithfulness_figure,
    head_scores_figure,
    path_matrix_figure,
    path_patching_heatmap,
)
from workbench.validation import check_fields, check_str

Log = Callable[[str], None]
STEPS = ("dla", "heads", "path", "edges")
INDUCTION_THRESHOLD = 0.4  # a head is called an induction head above this score (mass on the induction target)


@dataclass(frozen=True)
class CircuitConfig:
    """What ``run_circuit`` does; every field is validated."""

    task: str = "ioi"  # a workbench.patching task (ioi, capital, antonym)
    n: int = 16  # prompts built (those the model fails are dropped)
    seed: int = 0  # task builder seed
    induction_prompts: int = 8  # repeated random sequences for the head scores
    induction_half_len: int = 50  # tokens in each half of a repeated sequence
    receivers: int = 3  # top logit-writing heads whose queries are the second path-patching receivers
    ig_steps: int = 5  # EAP-IG points on the corrupted → clean path
    random_seeds: int = 2  # random-edge circuits per k on the faithfulness curve
    k_points: int = 10  # edge counts on the faithfulness curve (log-spaced, plus 0 and all)
    graph_edges: int = 40  # edges drawn in the circuit figure
    steps: tuple[str, ...] = ("dla", "heads", "path", "edges")  # which steps to run

    def __post_init__(self) -> None:
        check_str("CircuitConfig.task", self.task)
        check_fields(
            self,
            n={"kind": "int", "min": 1},
            seed={"kind": "int"},
            induction_prompts={"kind": "int", "min": 1},
            induction_half_len={"kind": "int", "min": 2},
            receivers={"kind": "int", "min": 1},
            ig_steps={"kind": "int", "min": 1},
            random_seeds={"kind": "int", "min": 0},
            k_points={"kind": "int", "min": 2},
            graph_edges={"kind": "int", "min": 1},
        )
        if not isinstance(self.steps, tuple) or not self.steps:
            raise TypeError(f"CircuitConfig.steps must be a non-empty tuple, got {self.steps!r}")
        bad = [s for s in self.steps if s not in STEPS]
        if bad:
            raise ValueError(f"CircuitConfig.steps has unknown steps {bad}; use {', '.join(STEPS)}")


FORMATS = ("html", "png", "svg")


@dataclass
class Output:
    """Where a run's figures go, in which formats, and the files written so far."""

    directory: Path
    formats: tuple[str, ...] = FORMATS
    written: list = field(default_factory=list)

    def save(self, fig, name: str) -> None:
        self.written.extend(
            str(p) for p in save_figure(fig, name, directory=self.directory, formats=self.formats).values()
        )


def dla_step(model, task, out: Output, log: Log) -> dict:
    t0 = time.perf_counter()
    attr = dla_task(model, task)
    out.save(dla_heatmap(attr, title=f"{task.name}: direct logit attribution per head"), f"circuit_{task.name}_dla")
    out.save(accumulated_figure(attr), f"circuit_{task.name}_accumulated")
    top = attr.top(8, order="positive")
    neg = attr.top(4, order="negative")
    log(f"DLA: top heads {', '.join(f'{k} {v:+.2f}' for k, v in top[:5])}; most negative {neg[0][0]} {neg[0][1]:+.2f}")
    return {
        "seconds": time.perf_counter() - t0,
        "mean_logit_diff": float(attr.logit_diff.mean()),
        "sum_error": attr.sum_error,
        "top_positive": top,
        "top_negative": neg,
        "layers": {k: v.tolist() for k, v in attr.layer_values().items()},
    }


def heads_step(model, cfg: CircuitConfig, out: Output, log: Log) -> dict:
    t0 = time.perf_counter()
    scores = induction_scores(model, cfg.induction_prompts, cfg.induction_half_len)
    out.save(head_scores_figure(scores), "circuit_head_scores")
    induction = scores.above("induction", INDUCTION_THRESHOLD)
    show = [(L, h) for L, h, _ in (induction or scores.top("induction", 3))[:6]]
    prev = scores.top("previous_token", 2)
    show += [(L, h) for L, h, _ in prev if (L, h) not in show]
    tokens = repeated_random_tokens(model, 1, 12, seed=1)
    patterns = attention_patterns(model, tokens, show)
    out.save(attention_figure(patterns, cols=4), "circuit_induction_patterns")
    out.save(attention_figure(patterns, cols=4, interactive=False), "circuit_induction_patterns_static")
    log(
        f"induction heads (score > {INDUCTION_THRESHOLD}): "
        + (", ".join(f"L{L}H{h} {v:.2f}" for L, h, v in induction) or "none")
    )
    return {
        "seconds": time.perf_counter() - t0,
        "source": scores.source,
        "threshold": INDUCTION_THRESHOLD,
        "induction_heads": induction,
        "top": {k: scores.top(k, 8) for k in scores.scores},
    }


def path_step(model, task, metric, cfg: CircuitConfig, out: Output, log: Log) -> dict:
    t0 = time.perf_counter()
    direct = path_patch(model, task.clean, task.corrupted, metric)
    out.save(path_patching_heatmap(direct), f"circuit_{task.name}_path_logits")
    movers = [label for label, v in direct.top(cfg.receivers, order="positive")]
    receivers = [f"{m}.q" for m in movers]
    t1 = time.perf_counter()
    queries = path_patch(model, task.clean, task.corrupted, metric, None, receivers)
    out.save(path_patching_heatmap(queries), f"circuit_{task.name}_path_queries")
    senders = [label for label, _ in queries.top(8)]
    matrix = path_patch_matrix(model, task.clean, task.corrupted, metric, senders, [*receivers, "logits"])
    out.save(path_matrix_figure(matrix), f"circuit_{task.name}_path_matrix")
    log(f"path patching → logits: {', '.join(f'{k} {v:+.2f}' for k, v in direct.top(5))}")
    log(f"path patching → queries of {', '.join(movers)}: {', '.join(f'{k} {v:+.3f}' for k, v in queries.top(5))}")
    return {
        "seconds_logits": t1 - t0,
        "seconds_queries": time.perf_counter() - t1,
        "to_logits": direct.top(10),
        "query_receivers": receivers,
        "to_queries": queries.top(10),
        "matrix": {"senders": senders, "receivers": [*receivers, "logits"], "values": matrix.values.tolist()},
    }


def edges_step(model, task, metric, cfg: CircuitConfig, out: Output, log: Log) -> dict:
    graph = Graph.of(model)
    scores, seconds = [], {}
    for method in ("eap", "eap-ig", "eap-relp"):
        t0 = time.perf_counter()
        scores.append(edge_scores(model, task.clean, task.corrupted, metric, method, steps=cfg.ig_steps, graph=graph))
        seconds[method] = time.perf_counter() - t0
    log(f"edge scores for {graph.n_edges} edges: " + ", ".join(f"{m} {s:.1f} s" for m, s in seconds.items()))
    ks = default_ks(graph.n_edges, cfg.k_points)
    t0 = time.perf_counter()
    curve = faithfulness_curve(
        model, task.clean, task.corrupted, metric, scores, ks, random_seeds=cfg.random_seeds, progress=False
    )
    seconds["faithfulness_curve"] = time.perf_counter() - t0
    out.save(faithfulness_figure(curve), f"circuit_{task.name}_faithfulness")
    best = max(scores, key=lambda s: sum(curve.curves[s.method].tolist()))
    out.save(circuit_figure(best, cfg.graph_edges), f"circuit_{task.name}_graph")
    out.save(circuit_figure(best, cfg.graph_edges, interactive=False), f"circuit_{task.name}_graph_static")
    smallest = {m: curve.smallest_k(m, 0.8) for m in curve.curves}
    log("edges for 80% of the clean metric: " + ", ".join(f"{m} {k}" for m, k in smallest.items()))
    return {
        "n_edges": graph.n_edges,
        "seconds": seconds,
        "ks": list(curve.ks),
        "curves": {m: v.tolist() for m, v in curve.curves.items()},
        "random": curve.random.tolist(),
        "edges_for_80_percent": smallest,
        "best_method": best.method,
        "top_edges": {s.method: s.ranked(15) for s in scores},
    }


def run_circuit(
    model,
    cfg: Optional[CircuitConfig] = None,
    *,
    task=None,
    figures: Optional[str] = None,
    results: Optional[str] = None,
    formats: Sequence[str] = FORMATS,
    log: Log = print,
) -> dict:
    """Run the configured steps on ``model`` and write figures (``figures_dir(figures)``) and
    ``circuit_<task>.json`` (``results_dir(results)``); returns the summary. ``task`` (a
    ``workbench.patching.Task``) replaces the task the config would build (e.g. token ids for a model
    without a tokenizer)."""
    cfg = CircuitConfig() if cfg is None else cfg
    if not isinstance(cfg, CircuitConfig):
        raise TypeError(f"cfg must be a CircuitConfig, got {type(cfg).__name__}")
    out = Output(figures_dir(figures), tuple(formats))
    summary: dict = {"config": asdict(cfg), "model": model.cfg.model_name}
    needs_task = any(s in cfg.steps for s in ("dla", "path", "edges"))
    if needs_task:
        built = build_task(model, cfg.task, cfg.n, seed=cfg.seed) if task is None else task
        check = check_task(model, built)
        log(check.summary())
        task = check.kept
        metric = make_metric(model, task)
        log(f"mean logit difference: clean {metric.ld_clean:.3f}, corrupted {metric.ld_corrupted:.3f}")
        summary["task"] = {
            "name": task.name,
            "n_prompts": task.n,
            "seq_len": task.seq_len,
            "clean_accuracy": check.clean_accuracy,
            "ld_clean": metric.ld_clean,
            "ld_corrupted": metric.ld_corrupted,
        }
    if "dla" in cfg.steps:
        summary["dla"] = dla_step(model, task, out, log)
    if "heads" in cfg.steps:
        summary["heads"] = heads_step(model, cfg, out, log)
    if "path" in cfg.steps:
        summary["path_patching"] = path_step(model, task, metric, cfg, out, log)
    if "edges" in cfg.steps:
        summary["edges"] = edges_step(model, task, metric, cfg, out, log)
    summary["figures"] = out.written
    res_dir = results_dir(results)
    res_dir.mkdir(parents=True, exist_ok=True)
    name = summary["task"]["name"] if "task" in summary else cfg.task
    path = save_json(res_dir / f"circuit_{name}.json", summary, kind="circuit_report", version=1)
    log(f"{len(out.written)} figure files in {out.directory}/, summary {path}")
    return summary


def exact_edge_effects(model, task, metric, scores: Sequence, receivers: Sequence[str], *, log: Log = print) -> dict:
    """Brute-force edge patching (``path_patch`` of each sender into one receiver: the corrupted
    run with only that edge restored) for every edge into ``receivers``; Pearson r of each
    method's scores with it, and the wall time per edge."""
    from workbench.patching.faithfulness import pearson

    graph = scores[0].graph
    index = {r.label: j for j, r in enumerate(graph.receivers)}
    unknown = [label for label in receivers if label not in index]
    if unknown or not receivers:
        raise KeyError(f"unknown receivers {unknown or receivers!r}; e.g. 'logits', 'MLP3', 'L5H1.q'")
    exact, est = [], {s.method: [] for s in scores}
    t0 = time.perf_counter()
    for label in receivers:
        j = index[label]
        us = torch.nonzero(graph.edges[:, j]).flatten().tolist()
        res = path_patch(
            model, task.clean, task.corrupted, metric, [graph.senders[u] for u in us], [graph.receivers[j]]
        )
        exact += res.values.tolist()
        for s in scores:
            est[s.method] += s.scores[us, j].tolist()
    seconds = time.perf_counter() - t0
    ex = torch.tensor(exact)
    r = {m: pearson(torch.tensor(v), ex) for m, v in est.items()}
    log(
        f"{len(exact)} edges patched one at a time in {seconds:.1f} s; Pearson r "
        + ", ".join(f"{m} {v:.3f}" for m, v in r.items())
    )
    return {"n_edges": len(exact), "seconds": seconds, "seconds_per_edge": seconds / len(exact), "pearson": r}


def run_edge_bench(
    model,
    *,
    task: str = "ioi",
    n: int = 8,
    receivers: Sequence[str] = ("logits", "MLP20"),
    ig_steps: int = 5,
    log: Log = print,
) -> list:
    """Timings: every edge scored by EAP / EAP-IG / EAP-RelP against brute-force edge patching
    (one edge at a time: ``path_patch`` of one sender into one receiver, batched over senders),
    measured on the edges into ``receivers`` and extrapolated per edge to the whole graph; and path
    patching of every head into the logits, batched against one sender per pass."""
    from workbench.experiments.bench import Timing, machine_note

    t = check_task(model, build_task(model, task, n)).kept
    metric = make_metric(model, t)
    graph = Graph.of(model)
    scores, seconds = [], {}
    for method in ("eap", "eap-ig", "eap-relp"):
        t0 = time.perf_counter()
        scores.append(edge_scores(model, t.clean, t.corrupted, metric, method, steps=ig_steps, graph=graph))
        seconds[method] = time.perf_counter() - t0
    exact = exact_edge_effects(model, t, metric, scores, receivers, log=log)
    brute_all = exact["seconds_per_edge"] * graph.n_edges
    note = f"{graph.n_edges} edges; brute force measured on {exact['n_edges']} ({machine_note()})"
    rows = [
        Timing(
            f"{m} (all edges, r = {exact['pearson'][m]:.3f})",
            s,
            "brute-force edge patching (extrapolated)",
            brute_all,
            note,
        )
        for m, s in seconds.items()
    ]
    heads = [f"L{L}H{h}" for L in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)][
        :: max(1, model.cfg.n_heads)
    ]
    t0 = time.perf_counter()
    path_patch(model, t.clean, t.corrupted, metric, heads)
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    path_patch(model, t.clean, t.corrupted, metric, heads, tokens_per_pass=t.n * t.seq_len)
    single = time.perf_counter() - t0
    rows.append(
        Timing(f"path patching {len(heads)} heads → logits, batched", batched, "one sender per pass", single, "")
    )
    return rows


__all__ = [
    "STEPS",
    "CircuitConfig",
    "dla_step",
    "edges_step",
    "exact_edge_effects",
    "heads_step",
    "path_step",
    "run_circuit",
    "run_edge_bench",
]
