"""``workbench sae ...``: train SAEs, score features, write dashboards, steer; ``workbench bench sae``."""

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Sparse autoencoders: train, scores, dashboard, steer, replicate.", no_args_is_help=True)
console = Console()


def _scores_dir(name: str) -> Path:
    from workbench.models import cache_dir

    return cache_dir() / "sae_scores" / Path(name).name


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def train(ctx: typer.Context) -> None:
    """Train TopK SAEs (all flags go to ``python -m workbench.sae.train``; try ``--help``)."""
    from workbench.sae.train import main

    main(list(ctx.args))


@app.command("list")
def list_saes() -> None:
    """List the local SAEs (``saes/``)."""
    from workbench.sae.loading import list_local_saes, saes_dir

    names = list_local_saes()
    console.print(f"{len(names)} SAEs in {saes_dir()}")
    for n in names:
        console.print(f"  {n}")


def _feature_table(df, title: str, n: int) -> Table:
    t = Table(title=title)
    for col in ("feature", "S_out", "S_in", "max act", "logit-lens tokens"):
        t.add_column(col)
    for _, r in df.head(n).iterrows():
        t.add_row(
            str(r["feature"]),
            f"{r['output_score']:.4f}",
            "—" if r["input_score"] != r["input_score"] else f"{r['input_score']:.2f}",
            f"{r['max_activation']:.2f}",
            " ".join(repr(x) for x in r["top_tokens"][:6]),
        )
    return t


@app.command()
def scores(
    sae: str = typer.Argument(..., help="local SAE name (see `workbench sae list`) or folder"),
    n_rows: int = typer.Option(256, help="held-out 128-token sequences for the top examples (input scores)"),
    batch_size: int = typer.Option(256, help="features per forward pass for the output scores"),
    out: Optional[Path] = typer.Option(
        None, help="folder for scores.csv, logit lens and top examples (default: cache)"
    ),
    show: int = typer.Option(12, help="rows to print per table"),
) -> None:
    """Input and output scores of every feature (Arad, Mueller & Belinkov 2025)."""
    from workbench.models import load_model
    from workbench.sae.loading import load_sae
    from workbench.sae.scores import feature_scores, save_scores

    model = load_model()
    s = load_sae(sae)
    fs = feature_scores(model, s, n_rows=n_rows, batch_size=batch_size)
    path = save_scores(fs, out or _scores_dir(sae))
    t = fs.table
    console.print(_feature_table(t.sort_values("output_score", ascending=False), "highest output scores", show))
    console.print(
        _feature_table(
            t[t["n_examples"] >= 10].sort_values("input_score", ascending=False), "highest input scores", show
        )
    )
    console.print(f"saved to {path}")


def _load_or_compute(model, sae_obj, sae: str, scores_dir: Optional[Path], n_rows: int):
    from workbench.sae.scores import feature_scores, load_scores, save_scores

    path = scores_dir or _scores_dir(sae)
    if (path / "scores.csv").exists() and (path / "top_examples.safetensors").exists():
        return load_scores(path)
    console.print(f"no saved scores in {path}; computing them (n_rows={n_rows})")
    fs = feature_scores(model, sae_obj, n_rows=n_rows)
    save_scores(fs, path)
    return fs


def _parse_features(features: Optional[str], d_sae: int) -> list[int]:
    if not features:
        return []
    try:
        out = [int(x) for x in features.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"features must be comma-separated ints, got {features!r}") from None
    bad = [f for f in out if not 0 <= f < d_sae]
    if bad:
        raise typer.BadParameter(f"features {bad} out of range 0..{d_sae - 1}")
    return out


@app.command()
def dashboard(
    sae: str = typer.Argument(..., help="local SAE name or folder"),
    features: Optional[str] = typer.Option(None, help="comma-separated feature ids"),
    top: int = typer.Option(10, help="without --features: this many highest-output-score features"),
    out: Optional[Path] = typer.Option(None, help="output folder (default figures/dashboards/<sae>)"),
    scores_dir: Optional[Path] = typer.Option(None, help="saved scores (default: cache, computed when missing)"),
    n_rows: int = typer.Option(256, help="held-out sequences when scores must be computed"),
) -> None:
    """HTML dashboards: top contexts, activation histogram, logit lens, input and output scores."""
    from workbench.models import load_model
    from workbench.sae.dashboard import write_dashboards
    from workbench.sae.loading import load_sae

    model = load_model()
    s = load_sae(sae)
    fs = _load_or_compute(model, s, sae, scores_dir, n_rows)
    feats = _parse_features(features, s.cfg.d_sae)
    if not feats:
        t = fs.table[fs.table["n_examples"] >= 10]
        if t.empty:
            t = fs.table[fs.table["n_examples"] >= 1]
            console.print(
                f"[yellow]no feature has 10 top examples in these scores (n_rows too small?); "
                f"taking the highest output scores among the {len(t)} features that fired[/yellow]"
            )
        if t.empty:
            raise typer.BadParameter(
                f"no feature fired on the corpus used for the scores in {scores_dir or _scores_dir(sae)}"
            )
        feats = t.sort_values("output_score", ascending=False)["feature"].head(top).tolist()
    folder = out or Path("figures") / "dashboards" / Path(sae).name
    paths = write_dashboards(model, s, fs, feats, folder, name=Path(sae).name)
    console.print(f"wrote {len(paths)} dashboards: {folder / 'index.html'}")


@app.command()
def steer(
    sae: str = typer.Argument(..., help="local SAE name or folder"),
    feature: int = typer.Argument(..., help="feature id"),
    strength: list[float] = typer.Option(
        [4.0], "--strength", "-s", help="s (× the feature's max activation); repeatable"
    ),
    prompt: str = typer.Option("I think that", help="prompt to continue"),
    tokens: int = typer.Option(24, help="new tokens"),
    temperature: float = typer.Option(0.0, help="0 = greedy"),
    max_activation: Optional[float] = typer.Option(
        None, help="the feature's max activation (default: from saved scores)"
    ),
    scores_dir: Optional[Path] = typer.Option(None, help="saved scores (default: cache, computed when missing)"),
    clamp: bool = typer.Option(
        False, help="clamp the feature to s × max activation in the SAE basis instead of adding"
    ),
) -> None:
    """Steer with one feature on the last prompt token and every generated token; print the text."""
    from workbench.models import load_model
    from workbench.registry import HookRegistry
    from workbench.sae.loading import load_sae, sae_site
    from workbench.sae.replication import generation_success
    from workbench.sae.scores import feature_logit_lens
    from workbench.sae.steering import ClampFeature, steer_feature

    model = load_model()
    s = load_sae(sae)
    if not 0 <= feature < s.cfg.d_sae:
        raise typer.BadParameter(f"feature {feature} out of range 0..{s.cfg.d_sae - 1}")
    if max_activation is None:
        fs = _load_or_compute(model, s, sae, scores_dir, 256)
        max_activation = float(fs.examples.max_activation[feature])
        top = fs.lens.top_tokens[feature]
    else:
        top = feature_logit_lens(model, s).top_tokens[feature]
    if max_activation <= 0:
        console.print(
            f"[yellow]feature {feature} never fired on the corpus (max activation 0); pass --max-activation[/yellow]"
        )
        raise typer.Exit(1)
    tok = model.tokenizer
    console.print(
        f"feature {feature} at {sae_site(s)}: max activation {max_activation:.3g}; logit lens: "
        + " ".join(repr(tok.decode([t])) for t in top[:10].tolist())
    )
    t = Table(title=f"prompt: {prompt!r}")
    t.add_column("s")
    t.add_column("success")
    t.add_column("completion")
    for st in [0.0, *strength]:
        reg = HookRegistry(model)
        if st:
            if clamp:
                reg.steer("clamp", sae_site(s, model), ClampFeature(s, feature, st * max_activation), positions="last")
            else:
                steer_feature(reg, s, feature, st, max_activation=max_activation)
        g = reg.generate(prompt, tokens, temperature=temperature)
        width = g.tokens.shape[1] - g.new_tokens.shape[1]
        succ = generation_success(g.new_tokens, g.attention_mask[:, width:].bool(), top[None])
        t.add_row(f"{st:g}", f"{float(succ[0]):.2f}", g.completions[0])
    console.print(t)


@app.command()
def replicate(
    saes: Optional[list[str]] = typer.Argument(None, help="local SAE names (default: all local SAEs)"),
    small: bool = typer.Option(False, help="a few-minute budget"),
    n_scored: Optional[int] = typer.Option(None, help="output-score this many random features per SAE (default all)"),
    n_rows: int = typer.Option(256, help="held-out sequences for input scores"),
    n_steer: int = typer.Option(12, help="features per group per layer"),
    filter_threshold: float = typer.Option(0.01, help="'filtered random' group: random features with S_out >= this"),
    n_prompts: int = typer.Option(8, help="prompts per feature"),
    tokens: int = typer.Option(16, help="new tokens per generation"),
    strengths: str = typer.Option("2,4,8", help="comma-separated strengths s"),
    out: Path = typer.Option(Path("results/sae"), help="results folder (CSV/JSON)"),
    figures: Optional[Path] = typer.Option(None, help="figures folder (default figures/)"),
    replot_only: bool = typer.Option(
        False, "--replot", help="only re-summarise the saved results in --out and redraw the figures"
    ),
) -> None:
    """Replicate the paper's findings: score scatter, layer trend, steering success (high vs random vs low)."""
    import json

    if replot_only:
        from workbench.sae.replication import replot

        if not (out / "replication.json").exists():
            raise typer.BadParameter(
                f"no saved results in {out} (expected {out / 'replication.json'}); run without --replot first"
            )
        replot(out, figures)
        console.print(json.dumps(json.loads((out / "replication.json").read_text()).get("pooled", {}), indent=1))
        return

    from workbench.models import load_model
    from workbench.sae.loading import list_local_saes, load_sae
    from workbench.sae.replication import ReplicationConfig, run_replication

    names = saes or list_local_saes()
    if not names:
        raise typer.BadParameter("no SAEs given and none in saes/")
    if small:
        cfg = ReplicationConfig.small()
    else:
        cfg = ReplicationConfig(
            n_rows=n_rows,
            n_scored=n_scored,
            n_steer=n_steer,
            n_prompts=n_prompts,
            filter_threshold=filter_threshold,
            max_new_tokens=tokens,
            strengths=tuple(float(x) for x in strengths.split(",")),
        )
    model = load_model()
    cache = None if cfg.n_scored is not None else _scores_dir("x").parent
    res = run_replication(
        model,
        {n: load_sae(n) for n in names},
        cfg,
        out_dir=out,
        figures_dir=figures,
        scores_cache=cache,
        log=console.print,
    )
    console.print(json.dumps({k: res[k] for k in ("pooled", "timing_seconds")}, indent=1, default=float))


def bench_command(
    sae: Optional[str] = typer.Option(None, help="local SAE (default: the layer-15 one, else the first)"),
    n_naive: int = typer.Option(32, help="features timed in the naive loop (extrapolated per feature)"),
    batch_size: int = typer.Option(256, help="features per batched forward pass"),
    n_float64: int = typer.Option(8, help="features re-checked with model and SAE in float64 (0 = skip)"),
    json_out: Optional[Path] = typer.Option(None, help="also write the numbers as JSON here"),
) -> None:
    """Output scores of every latent of one SAE: batched vs one forward pass per feature."""
    import json

    from workbench.experiments.bench import timing_table
    from workbench.experiments.bench.sae import run_sae_bench

    rows, info = run_sae_bench(sae, n_naive=n_naive, batch_size=batch_size, n_float64=n_float64, console=console)
    console.print(timing_table(rows, "bench sae (ratio < 1 = faster than the baseline)"))
    console.print(
        f"speed-up {info['speedup']:.1f}× (goal ≥ 20×). The naive loop (one forward pass per feature) was timed "
        f"on {info['naive_subset']} features ({info['naive_subset_seconds']:.1f} s) and extrapolated per feature "
        f"to all {info['d_sae']} latents."
    )
    console.print(
        f"scores on that subset, float32: max |Δ| {info['max_abs_diff']:.2e} (max relative {info['max_rel_diff']:.1e}), "
        f"{info['n_exactly_equal']}/{info['naive_subset']} bit-identical, allclose(rtol 1e-4) = {info['allclose_rtol1e-4']}"
    )
    if "float64_features" in info:
        console.print(
            f"float64 re-check: {info['float64_bit_identical']}/{info['float64_features']} scores bit-identical "
            f"(max |Δ| {info['float64_max_abs_diff']:.1e})"
        )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(info, indent=2))
