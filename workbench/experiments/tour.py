"""``workbench tour``: the whole workbench, end to end, on the embedded model.

Each step reads and edits the model through the hook registry, writes paper-ready figures (HTML +
PNG + SVG) into ``figures/``, and returns the numbers behind them. At the end the tour writes the
gallery page ``figures/index.html`` and prints a summary table. ``quick=True`` is a one-minute
version with tiny budgets (the tests run it).
"""

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from workbench.experiments.export import save_figure, static_export_server
from workbench.experiments.gallery import GalleryEntry, write_gallery
from workbench.paths import figures_dir as default_figures_dir
from workbench.tokens import encode, token_strings


@dataclass(frozen=True)
class TourConfig:
    """``quick``: tiny budgets (about a minute); ``static``: also write PNG + SVG; ``steps``: a subset
    of :data:`STEP_NAMES` to run (default all)."""

    quick: bool = False
    figures_dir: Path = field(default_factory=default_figures_dir)
    static: bool = True
    steps: Optional[tuple] = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps is not None:
            unknown = [s for s in self.steps if s not in STEP_NAMES]
            if unknown or not self.steps:
                raise ValueError(f"unknown tour steps {unknown}; choose from {', '.join(STEP_NAMES)}")
            for step in self.steps:
                missing = [r for r in REQUIRES.get(step, ()) if r not in self.steps]
                if missing:
                    raise ValueError(
                        f"tour step {step!r} needs step(s) {', '.join(missing)} first; add "
                        + " ".join(f"--step {m}" for m in missing)
                    )

    @property
    def step_names(self) -> tuple:
        """The steps this tour runs, in the tour's order."""
        return tuple(n for n in STEP_NAMES if self.steps is None or n in self.steps)

    @property
    def command(self) -> str:
        return "workbench tour" + (" --quick" if self.quick else "")


@dataclass
class StepResult:
    name: str
    seconds: float = 0.0
    entries: list[GalleryEntry] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)
    error: Optional[str] = None


class _Step:
    """Collects the figures and numbers of one tour step."""

    def __init__(self, name: str, cfg: TourConfig) -> None:
        self.cfg = cfg
        self.result = StepResult(name)

    def figure(self, fig, name: str, title: str, caption: str, numbers: Optional[dict[str, str]] = None) -> None:
        formats = ("html", "png", "svg") if self.cfg.static else ("html",)
        save_figure(fig, name, directory=self.cfg.figures_dir, formats=formats)
        self.result.entries.append(GalleryEntry(name, title, caption, self.cfg.command, dict(numbers or {})))

    def number(self, key: str, value) -> None:
        self.result.numbers[key] = value if isinstance(value, str) else f"{value:.3g}"


# ----------------------------------------------------------------------------- steps
def step_lens(model, cfg: TourConfig, state: dict, s: _Step) -> None:
    """Logit lens of a factual prompt, and its change when the run is steered."""
    from workbench.edits import AddVector
    from workbench.lens import logit_lens
    from workbench.plots.lens import lens_heatmap, target_curve
    from workbench.registry import HookRegistry

    prompt = "The Eiffel Tower is in the city of"
    res = logit_lens(model, prompt, k=5, targets=[" Paris"])
    pos = len(res.tokens[0]) - 1
    p_final = float(res.target_probs[0, -1, pos, 0])
    first = next((L for L, p in zip(res.layers, res.target_probs[0, :, pos, 0].tolist()) if p > 0.5), None)
    s.figure(
        lens_heatmap(res, title=f"Logit lens: top token and its probability, '{prompt}'"),
        "logit_lens_heatmap",
        "Logit lens heatmap",
        "Top next-token prediction (and its probability) read from every layer's residual "
        "stream at every position, final RMSNorm recomputed per layer (nostalgebraist 2020).",
        {"P(' Paris') at the last layer": f"{p_final:.3f}", "first layer with P(' Paris') > 0.5": str(first)},
    )
    # steer at layer 12 away from Paris: the lens shows where the prediction changes
    paris = model.W_U[:, model.to_single_token(" Paris")]
    reg = HookRegistry(model).steer("away", "resid_post.12", AddVector(-paris / paris.norm(), 12.0))
    steered = logit_lens(model, prompt, k=5, targets=[" Paris"], registry=reg)
    s.figure(
        target_curve(
            {"unsteered": res, "steered at resid_post.12": steered},
            title="P(' Paris') by layer, unsteered and steered away at layer 12",
        ),
        "logit_lens_target_curve",
        "Target probability across layers",
        "Probability of ' Paris' read through the logit lens at each layer; the steered run subtracts the "
        "unembedding direction of ' Paris' at resid_post.12.",
        {"P(' Paris') final, steered": f"{float(steered.target_probs[0, -1, pos, 0]):.3f}"},
    )
    s.number("P(' Paris') final", p_final)
    s.number("P(' Paris') final, steered", float(steered.target_probs[0, -1, pos, 0]))


def step_tuned_lens(model, cfg: TourConfig, state: dict, s: _Step) -> None:
    """Tuned lens vs logit lens: KL to the final layer at every layer on held-out model-written text.
    Uses the tuned lens saved in the cache by ``workbench lens --train-tuned`` (its held-out split is
    recomputed here); without one, trains and saves one with a 4-minute budget. ``--quick`` trains a
    throwaway lens for a few steps on a tiny corpus instead."""
    from workbench.experiments.tuned_lens import (
        cached_lens_corpus,
        default_tuned_lens_path,
        heldout_kl_of_default_lens,
        train_default_tuned_lens,
    )
    from workbench.lens import TunedLens, TunedLensConfig, cache_residuals, lens_kl_by_layer, train_tuned_lens
    from workbench.plots.lens import kl_figure

    path = default_tuned_lens_path(model)
    try:
        meta = TunedLens.load(path, model).metadata if path.exists() else {}
    except ValueError:  # another model's lens, or an unreadable file (ArtifactError is a ValueError): retrain
        meta = {}
    if cfg.quick:
        tokens = cached_lens_corpus(model, 6, 16, progress=True)
        lens, _ = train_tuned_lens(
            model,
            cache_residuals(model, tokens[:-2], progress=False),
            TunedLensConfig(steps=3, tokens_per_step=16),
            progress=True,
        )
        test, how = cache_residuals(model, tokens[-2:], progress=False), "3 steps on 64 tokens (quick)"
        kl, n_heldout = lens_kl_by_layer(model, test, lens), test.shape[1]
    else:
        if not path.exists() or "corpus_args" not in meta:  # train (it measures the held-out KL itself)
            kl, _ = train_default_tuned_lens(
                model,
                config=TunedLensConfig(steps=5000, tokens_per_step=32, max_seconds=240),
                figures=cfg.figures_dir,
                progress=True,
            )
            meta = TunedLens.load(path, model).metadata
        else:  # the cached lens: recompute its held-out KL from the recorded corpus split
            kl, _ = heldout_kl_of_default_lens(model)
        n_heldout = meta["heldout_tokens"]
        how = (
            f"{meta['steps_run']} steps ({meta['train_seconds']:.0f} s) on {meta['train_tokens']} tokens of "
            f"model-written text"
        )
    mid = model.cfg.n_layers // 2
    mean_kl = f"{float(kl['logit'][:-1].mean()):.2f} / {float(kl['tuned'][:-1].mean()):.2f}"
    nums = {
        f"mean KL over layers 0–{model.cfg.n_layers - 2}, logit / tuned (nats)": mean_kl,
        f"layer {mid}: logit / tuned": f"{float(kl['logit'][mid]):.2f} / {float(kl['tuned'][mid]):.2f}",
        "held-out tokens": str(n_heldout),
    }
    s.figure(
        kl_figure(kl),
        "tuned_lens_kl",
        "Tuned lens vs logit lens",
        f"KL(final ‖ lens) in nats at every layer on held-out model-written text; the tuned lens (Belrose et al. "
        f"2023: zero-initialised affine translators per layer, trained to minimise this KL) was trained {how}.",
        nums,
    )
    s.result.numbers.update(nums)


def step_probes(model, cfg: TourConfig, state: dict, s: _Step) -> None:
    """Logistic probe held-out accuracy at every layer, one line per concept (SCAV/GCAV layer selection)."""
    import pandas as pd

    from workbench.concepts.data import available_concepts, load_concept
    from workbench.concepts.extract import extract
    from workbench.concepts.vectors import best_layer, fit_vector, layer_sweep
    from workbench.plots.concepts import layer_accuracy_figure
    from workbench.sites import Site

    concepts = available_concepts()
    layers = [0, 4, 8, 12] if cfg.quick else list(range(0, model.cfg.n_layers, 2))  # quick: stop the forward at 12
    n_train, n_test = (24, 16) if cfg.quick else (200, 60)
    if cfg.quick:
        concepts = [c for c in concepts if c in ("sentiment", "language")] or concepts[:2]
    sweeps = []
    for name in concepts:
        data = load_concept(name)
        if data.test is None:
            raise ValueError(f"concept {name!r} has no test split; the tour's layer sweep scores on held-out texts")
        train, test = data.train.head(n_train), data.test.head(n_test)
        sites = [f"resid_post.{L}" for L in layers]
        tr = extract(model, train.texts, sites, "last", progress=True)
        te = extract(model, test.texts, sites, "last", progress=True)
        n, k = len(train.positive), len(test.positive)
        sweep = layer_sweep(
            {x: (tr[x][:n], tr[x][n:]) for x in sites}, {x: (te[x][:k], te[x][k:]) for x in sites}, concept=name
        )
        sweeps.append(sweep)
        best = best_layer(sweep)
        acc = float(sweep.loc[sweep["site"] == best, "test_accuracy"].iloc[0])
        s.number(f"{name}: best layer / held-out acc.", f"{best} / {acc:.3f}")
        if name == "sentiment":
            state["sentiment_probe"] = fit_vector(
                "logistic", Site.parse(best), tr[best][:n], tr[best][n:], concept=name
            )
            state["sentiment_texts"] = list(test.negative[:4]) + list(test.positive[:2])
    table = pd.concat(sweeps, ignore_index=True)
    table.to_csv(cfg.figures_dir / "concepts_probe_accuracy_by_layer.csv", index=False)
    s.figure(
        layer_accuracy_figure(table),
        "concepts_probe_accuracy_by_layer",
        "Probe accuracy by layer",
        f"Held-out accuracy of a logistic probe on the last token's resid_post activation, per layer and "
        f"concept ({n_train} training and {n_test} held-out texts per concept). At layer 0 the last token "
        f"(mostly '.') knows only itself; how soon each concept reaches it shows where the model moves it. "
        f"(Mean-pooled activations separate all four concepts at every layer, even layer 0: the concept sets "
        f"differ in their words.)",
        {k: v for k, v in s.result.numbers.items()},
    )


def step_steering(model, cfg: TourConfig, state: dict, s: _Step) -> None:
    """The steering bake-off on sentiment: dose-response curves and the success-vs-fluency frontier."""
    from workbench.concepts.bakeoff import BakeoffConfig, run_bakeoff
    from workbench.plots.concepts import bakeoff_figures

    config = (
        BakeoffConfig.for_budget("small", n_prompts=3, max_new_tokens=6)
        if cfg.quick
        else BakeoffConfig(n_prompts=12, max_new_tokens=20)
    )
    result = run_bakeoff(model, config, progress=True)
    result.table.to_csv(cfg.figures_dir / "concepts_bakeoff_sentiment.csv", index=False)
    summ = result.summary
    nums = {"winner": str(result.winner), "bake-off wall time (s)": f"{result.seconds:.0f}"}
    for _, row in summ.iterrows():
        if "positive_success" in summ.columns:
            nums[f"{row['method']}: VADER+ share up / down"] = (
                f"{row.get('positive_success', float('nan')):.2f} / {row.get('negative_success', float('nan')):.2f}"
            )
    for key, fig in bakeoff_figures(result).items():
        if key == "frontier":
            s.figure(
                fig,
                "steering_bakeoff_frontier",
                "Steering bake-off frontier",
                f"Concept success (VADER-positive share of completions, an independent judge) against fluency "
                f"(perplexity under the unsteered model), one frontier per method; sentiment at "
                f"{config.site.short}, {config.n_prompts} neutral prompts, {config.max_new_tokens} tokens.",
                nums,
            )
        else:
            s.figure(
                fig,
                f"steering_dose_response_{key}",
                f"Steering dose-response ({key})",
                "Success, perplexity ratio and next-token KL on neutral prompts against steering strength "
                "(units of ‖μ⁺ − μ⁻‖), one line per method.",
            )
    s.result.numbers.update(nums)


def step_gcav(model, cfg: TourConfig, state: dict, s: _Step) -> None:
    """GCAV: each token gets exactly the push that brings the probe's probability to the target."""
    import plotly.graph_objects as go

    from workbench.concepts.steering import GCAVEdit
    from workbench.plots.style import PALETTE, style
    from workbench.registry import HookRegistry

    vec = state.get("sentiment_probe")
    if vec is None:
        raise RuntimeError("the GCAV demo needs the sentiment probe from the 'probes' step")
    target = 0.9
    edit = GCAVEdit.from_vector(vec, target, "add")
    texts = state["sentiment_texts"][:3]
    reg = HookRegistry(model)
    reg.probe("before", vec.site, when="before")
    reg.steer("gcav", vec.site, edit)
    reg.probe("after", vec.site, when="after")
    fig = go.Figure()
    errs, untouched, total = [], 0, 0
    x_offset = 0
    ticks, labels = [], []
    for i, text in enumerate(texts):
        reg.run(text, need_logits=True)
        before = torch.sigmoid(vec.probe_logit(reg.records["before"][0]))
        after = torch.sigmoid(vec.probe_logit(reg.records["after"][0]))
        pushed = before < target
        errs.append(float((after[pushed] - target).abs().max()) if pushed.any() else 0.0)
        untouched += int((~pushed).sum())
        total += len(before)
        toks = token_strings(model, encode(model, text))
        xs = list(range(x_offset, x_offset + len(toks)))
        ticks += xs
        labels += [t.replace("\n", "\\n") for t in toks]
        for values, label, marker in (
            (before, "before", dict(color=PALETTE[3], symbol="circle-open", size=9)),
            (after, "after GCAV edit", dict(color=PALETTE[0], size=7)),
        ):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=values.tolist(),
                    mode="markers",
                    name=label if i == 0 else None,
                    showlegend=i == 0,
                    marker=marker,
                )
            )
        x_offset += len(toks) + 1
    fig.add_trace(
        go.Scatter(
            x=[-0.5, x_offset - 1.5],
            y=[target, target],
            mode="lines",
            name=f"target p = {target}",
            line=dict(color="#555", dash="dash"),
            hoverinfo="skip",
        )
    )
    style(
        fig,
        title=f"GCAV probability target at {vec.site.short}: per-token probe probability",
        x="token",
        y="P(positive sentiment | h) (probe)",
        width=980,
        height=460,
    )
    fig.update_xaxes(tickmode="array", tickvals=ticks, ticktext=labels, tickangle=-60)
    fig.update_yaxes(range=[-0.02, 1.02])
    worst = max(errs)
    s.figure(
        fig,
        "gcav_probability_target",
        "GCAV probability-target demo",
        "For each token of three held-out sentences, the sentiment probe's probability before and after the "
        "GCAV edit (Zhang et al. 2025): tokens below the target are moved along w/‖w‖ by exactly "
        "ε = (logit(p⁺) − b − wᵀh)/‖w‖; tokens already above it are left alone.",
        {"max |p_after − target| where pushed": f"{worst:.1e}", "tokens left unchanged": f"{untouched} of {total}"},
    )
    s.number("GCAV max |p − target|", f"{worst:.1e}")


def step_sae(model, cfg: TourConfig, state: dict, s: _Step) -> None:
    """Input vs output scores of SAE features per layer (Arad et al. 2025), and one feature dashboard."""
    from workbench.experiments.sae_dashboard import write_dashboards
    from workbench.experiments.sae_replication import ReplicationConfig, cooccurrence, score_saes
    from workbench.plots.sae import score_scatter_figure
    from workbench.sae.loading import list_local_saes, load_sae

    names = list_local_saes()
    if not names:
        raise RuntimeError("no trained SAEs in saes/ (train them with `workbench sae train`)")
    saes = {n: load_sae(n) for n in names}
    rc = (
        ReplicationConfig(n_rows=12, n_scored=64, n_steer=4)
        if cfg.quick
        else ReplicationConfig(n_rows=128, n_scored=1024)
    )
    scores = score_saes(model, saes, rc, progress=True, log=lambda *a: None)
    tables = {n: fs.table for n, fs in scores.items()}
    nums = {}
    for n, t in tables.items():
        co = cooccurrence(t, min_examples=rc.min_examples)
        nums[f"{n}: share high on both (vs if independent)"] = (
            f"{co['share_both_observed']:.4f} ({co['share_both_if_independent']:.4f})"
        )
        nums[f"{n}: Spearman ρ(S_in, S_out)"] = f"{co['spearman_rho']:.2f}"
        nums[f"{n}: mean S_out"] = f"{t['output_score'].mean():.4f}"
    s.figure(
        score_scatter_figure(tables, min_examples=rc.min_examples),
        "sae_input_vs_output_scores",
        "SAE input vs output scores",
        f"Input score (share of top-activating examples whose max token is among the feature's top-20 logit-lens "
        f"tokens) against output score (measured steering effect at the last position of a neutral prompt, SAE "
        f"error kept) for {rc.n_scored} random features per SAE; held-out corpus of {rc.n_rows} sequences.",
        nums,
    )
    from workbench.sae.loading import sae_site

    def depth(n: str) -> int:  # embedding sites (layer None) come before every block
        layer = sae_site(saes[n], model).layer
        return -1 if layer is None else layer

    last = max(names, key=depth)  # the deepest SAE: clearest output features
    t = tables[last]
    t = t[t["n_examples"] >= rc.min_examples]
    feature = int(t.sort_values("output_score", ascending=False)["feature"].iloc[0])
    folder = cfg.figures_dir / "dashboards"
    write_dashboards(model, saes[last], scores[last], [feature], folder, name=last)
    # the dashboard's own figures go into the gallery as one entry (its logit lens panel)
    from workbench.plots.sae import logit_lens_figure

    s.figure(
        logit_lens_figure(scores[last].lens, feature, model),
        "sae_feature_dashboard_logit_lens",
        f"Feature dashboard: {last} #{feature}",
        "Logit-lens top and bottom tokens of the highest-output-score feature; the full dashboard "
        "(top contexts, activation histogram, scores) is figures/dashboards/.",
        {"feature": str(feature), "S_out": f"{float(t.set_index('feature').loc[feature, 'output_score']):.4f}"},
    )
    s.result.numbers.update(nums)


def step_patching(model, cfg: TourConfig, state: dict, s: _Step) -> None:
    """IOI-style activation patching, then AtP and RelP against it."""
    from workbench.patching.faithfulness import measure_faithfulness
    from workbench.patching.tasks import build_task, check_task, make_metric
    from workbench.plots.patching import grid_heatmap, scatter_figure

    task = build_task(model, "ioi", n=4 if cfg.quick else 12, seed=cfg.seed)
    check = check_task(model, task)
    kept = check.kept.head(1) if cfg.quick else check.kept  # quick: one prompt (450 patches)
    metric = make_metric(model, kept)
    streams = ("resid_pre",) if cfg.quick else ("resid_pre", "attn_out", "mlp_out")
    res = measure_faithfulness(model, kept, metric, streams, progress=True)
    toks = token_strings(model, kept.clean[0]) if kept.clean_prompts else None
    corr = res.correlations
    s.figure(
        grid_heatmap(
            res.act["resid_pre"],
            tokens=toks,
            title="IOI activation patching: resid_pre (layer × position)",
            zlabel="normalised logit diff",
        ),
        "patching_act_resid_pre",
        "Activation patching heatmap",
        f"Normalised logit difference (clean = 1, corrupted = 0) when the clean resid_pre at (layer, position) is "
        f"patched into the corrupted IOI run; mean over {kept.n} prompts the model gets right "
        f"(clean accuracy {check.clean_accuracy:.2f}).",
        {
            "IOI clean accuracy": f"{check.clean_accuracy:.2f}",
            "prompts kept / patched": f"{check.kept.n} of {check.n_total} / {kept.n}",
        },
    )
    for stream in streams:
        nums = {f"Pearson r, {m}": f"{corr[m][stream]:.3f}" for m in corr}
        s.figure(
            scatter_figure(res, stream),
            f"patching_faithfulness_{stream}",
            f"Activation patching vs AtP vs RelP ({stream})",
            "Each point is one (layer, position): the attribution estimate against the real activation-patching "
            "effect; RelP uses LRP rules (Jafari et al. 2025), relp_attn adds the CP-LRP attention rule.",
            nums,
        )
        s.result.numbers.update({f"{stream} r {m}": f"{corr[m][stream]:.3f}" for m in corr})
    s.number(
        "act-patching s / AtP s",
        f"{res.seconds.get('act', float('nan')):.1f} / {res.seconds.get('atp', float('nan')):.2f}",
    )


STEPS: dict[str, Callable] = {
    "lens": step_lens,
    "tuned_lens": step_tuned_lens,
    "probes": step_probes,
    "steering": step_steering,
    "gcav": step_gcav,
    "sae": step_sae,
    "patching": step_patching,
}
STEP_NAMES = tuple(STEPS)
# What each step reads from an earlier step's state (the GCAV demo uses the sentiment probe).
REQUIRES: dict[str, tuple] = {"gcav": ("probes",)}


def run_tour(cfg: TourConfig = TourConfig(), *, model=None, console=None) -> list[StepResult]:
    """Run every step (a failing step is reported, the others still run), write the gallery."""
    from workbench.models import load_model

    cfg.figures_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = model if model is not None else load_model()
    state: dict = {}
    results = []
    with contextlib.ExitStack() as stack:
        if cfg.static:
            stack.enter_context(static_export_server())  # one headless browser for every PNG/SVG
        for name in cfg.step_names:
            results.append(_run_step(name, model, cfg, state, console))
    entries = [e for r in results for e in r.entries]
    if entries:
        write_gallery(
            entries,
            cfg.figures_dir,
            subtitle=f"Figures from `{cfg.command}` on SmolLM2-135M-Instruct (embedded, 4-bit GGUF dequantised). "
            "Click a figure's links for the interactive HTML and the SVG.",
        )
    return results


def _run_step(name: str, model, cfg: TourConfig, state: dict, console) -> StepResult:
    """Run one step; a failure is recorded in its result (the tour then exits non-zero)."""
    step = _Step(name, cfg)
    if console is not None:
        console.rule(f"[bold]{name}")
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            STEPS[name](model, cfg, state, step)
    except Exception as err:
        step.result.error = f"{err.__class__.__name__}: {err}"
        if console is not None:
            console.print(f"[red]step {name} failed[/]: {step.result.error}")
            console.print(traceback.format_exc())
    step.result.seconds = time.perf_counter() - t0
    return step.result


def summary_table(results: list[StepResult]):
    from rich.table import Table

    t = Table(title="workbench tour: the numbers behind each figure", show_lines=True)
    t.add_column("step")
    t.add_column("seconds", justify="right")
    t.add_column("figures", justify="right")
    t.add_column("numbers")
    for r in results:
        nums = "\n".join(f"{k}: {v}" for k, v in r.numbers.items())
        if r.error:
            nums = f"[red]FAILED: {r.error}[/]\n" + nums
        t.add_row(r.name, f"{r.seconds:.1f}", str(len(r.entries)), nums)
    return t
