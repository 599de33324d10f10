"""``workbench sae ...``: train SAEs, score features, write dashboards, steer, replicate; ``workbench bench sae``."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from workbench.experiments.sae_training import RecipeConfig

app = typer.Typer(help="Sparse autoencoders: train, scores, dashboard, steer, replicate.", no_args_is_help=True)
console = Console()
_D = RecipeConfig()


def _scores_dir(name: str) -> Path:
    from workbench.paths import cache_dir

    return cache_dir() / "sae_scores" / Path(name).name


def _parse_layers(spec: str) -> tuple[int, ...]:
    """``"6,15,24"`` (or space-separated) as a tuple of ints."""
    try:
        layers = tuple(int(x) for x in spec.replace(",", " ").split())
    except ValueError:
        raise typer.BadParameter(f"layers must be comma-separated ints such as '6,15,24', got {spec!r}") from None
    if not layers:
        raise typer.BadParameter("give at least one layer, e.g. --layers 6,15,24")
    return layers


def _check_device(device: str) -> str:
    """A torch device string that exists on this machine (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise typer.BadParameter(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise typer.BadParameter(f"--device {device}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise typer.BadParameter(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise typer.BadParameter(f"--device {device}: MPS is not available on this machine")
    return device


@app.command()
def train(
    layers: str = typer.Option(",".join(map(str, _D.layers)), help="resid_post layers, comma-separated"),
    model: str = typer.Option(_D.model, help="model for workbench.models.load_model (default: the embedded one)"),
    device: str = typer.Option(_D.device, help="device of the model, the activations' forward and the training"),
    name_prefix: Optional[str] = typer.Option(None, help="SAE folder prefix (default: derived from the model)"),
    d_sae: int = typer.Option(_D.d_sae, help="latents per SAE"),
    k: int = typer.Option(_D.k, help="active latents per token (TopK)"),
    train_seqs: int = typer.Option(_D.train_seqs, help="training sequences whose activations are cached"),
    heldout_act_seqs: int = typer.Option(_D.heldout_act_seqs, help="held-out sequences for FVU / L0 / dead share"),
    eval_seqs: int = typer.Option(_D.eval_seqs, help="held-out sequences for CE loss recovered"),
    seq_len: int = typer.Option(_D.seq_len, help="corpus sequence length"),
    skip_positions: int = typer.Option(_D.skip_positions, help="leading positions excluded (attention sink)"),
    epochs: float = typer.Option(_D.epochs, help="passes over the training activations"),
    batch_size: int = typer.Option(_D.batch_size, help="activations per training step"),
    lr: float = typer.Option(_D.lr, help="peak Adam learning rate"),
    warmup_frac: float = typer.Option(_D.warmup_frac, help="share of steps with linear warm-up"),
    decay_frac: float = typer.Option(_D.decay_frac, help="share of final steps with linear decay"),
    aux_coef: float = typer.Option(_D.aux_coef, help="AuxK loss coefficient (revives dead latents)"),
    dead_window: int = typer.Option(_D.dead_window, help="steps without firing before a latent is dead"),
    extract_batch: int = typer.Option(_D.extract_batch, help="sequences per forward pass when caching activations"),
    shard_seqs: int = typer.Option(_D.shard_seqs, help="sequences per activation-cache shard"),
    seed: int = typer.Option(_D.seed, help="corpus order, weight init and batch order"),
    threads: int = typer.Option(_D.threads, help="torch CPU threads"),
    out_dir: str = typer.Option(_D.out_dir, help="folder for the SAE folders and their index"),
    save_dtype: str = typer.Option(_D.save_dtype, help="dtype of the saved weights: float16 or float32"),
    extract_only: bool = typer.Option(False, "--extract-only", help="stop after building the activation cache"),
) -> None:
    """Train TopK SAEs on residual streams with SAELens' trainer: corpus, activation cache,
    training, held-out evaluation, model cards (recipe: workbench/experiments/sae_training.py)."""
    values = {k: v for k, v in locals().items() if k != "extract_only"}  # the options, one per config field
    import shlex
    import sys

    from workbench.experiments.sae_training import COMMAND, run
    from workbench.models import ModelLoadError, load_model
    from workbench.sae.training import check_layers

    values["layers"] = _parse_layers(layers)
    _check_device(device)
    try:
        cfg = RecipeConfig(**values)
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    try:
        m = load_model(cfg.model, device=cfg.device)
    except (ModelLoadError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--model") from None
    try:
        check_layers(m, cfg.layers)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--layers") from None
    argv = sys.argv[1:]
    command = " ".join([COMMAND, *map(shlex.quote, argv[2:])]) if argv[:2] == ["sae", "train"] else None
    run(cfg, model=m, extract_only=extract_only, command=command)


@app.command()
def cards(
    out_dir: Annotated[Path, typer.Argument(help="folder of SAE folders with card.json")] = Path(_D.out_dir),
) -> None:
    """Rewrite every SAE's README.md card and the index from the card.json files."""
    from workbench.experiments.sae_training import refresh_cards

    if not out_dir.is_dir() or not any(out_dir.glob("*/card.json")):
        raise typer.BadParameter(f"no */card.json under {out_dir}")
    for p in refresh_cards(out_dir):
        console.print(f"wrote {p}")


@app.command()
def corpus(
    seq_len: int = typer.Option(128, help="tokens per sequence"),
    heldout_fraction: float = typer.Option(0.05, help="share of documents held out"),
    seed: int = typer.Option(0, help="document order and sequence shuffle"),
    rebuild: bool = typer.Option(False, "--rebuild", help="rebuild even when cached"),
) -> None:
    """Build (or find in the cache) the SAE training corpus and print its manifest."""
    import json

    from workbench.models import load_model
    from workbench.sae.corpus import CorpusConfig, build_corpus

    try:
        cfg = CorpusConfig(seq_len=seq_len, heldout_fraction=heldout_fraction, seed=seed)
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    c = build_corpus(load_model().tokenizer, cfg, rebuild=rebuild)
    console.print_json(json.dumps({k: c.manifest[k] for k in ("train", "heldout")}))
    console.print(str(c.path))


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
    n_rows: int = typer.Option(256, min=1, help="held-out 128-token sequences for the top examples (input scores)"),
    batch_size: int = typer.Option(256, min=1, help="features per forward pass for the output scores"),
    out: Annotated[
        Optional[Path], typer.Option(help="folder for scores.csv, feature lens and top examples (default: cache)")
    ] = None,
    show: int = typer.Option(12, min=0, help="rows to print per table"),
) -> None:
    """Input and output scores of every feature (Arad, Mueller & Belinkov 2025)."""
    from workbench.models import load_model
    from workbench.sae.loading import load_sae
    from workbench.sae.tables import feature_scores, save_scores

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
    from workbench.sae.tables import feature_scores, has_saved_scores, load_scores, save_scores

    path = scores_dir or _scores_dir(sae)
    if has_saved_scores(path):
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
    top: int = typer.Option(10, min=1, help="without --features: this many highest-output-score features"),
    out: Annotated[Optional[Path], typer.Option(help="output folder (default <figures>/dashboards/<sae>)")] = None,
    scores_dir: Annotated[
        Optional[Path], typer.Option(help="saved scores (default: cache, computed when missing)")
    ] = None,
    n_rows: int = typer.Option(256, min=1, help="held-out sequences when scores must be computed"),
) -> None:
    """HTML dashboards: top contexts, activation histogram, logit lens, input and output scores."""
    from workbench.experiments.sae_dashboard import write_dashboards
    from workbench.models import load_model
    from workbench.paths import figures_dir
    from workbench.sae.loading import load_sae

    model = load_model()
    s = load_sae(sae)
    feats = _parse_features(features, s.cfg.d_sae)
    fs = _load_or_compute(model, s, sae, scores_dir, n_rows)
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
    folder = out or figures_dir() / "dashboards" / Path(sae).name
    paths = write_dashboards(model, s, fs, feats, folder, name=Path(sae).name)
    console.print(f"wrote {len(paths)} dashboards: {folder / 'index.html'}")


@app.command()
def steer(
    sae: str = typer.Argument(..., help="local SAE name or folder"),
    feature: int = typer.Argument(..., help="feature id"),
    strength: Annotated[
        Optional[list[float]], typer.Option("--strength", "-s", help="s (× the feature's max activation); repeatable")
    ] = None,
    prompt: str = typer.Option("I think that", help="prompt to continue"),
    tokens: int = typer.Option(24, min=1, help="new tokens"),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy"),
    max_activation: Optional[float] = typer.Option(
        None, help="the feature's max activation, > 0 (default: from saved scores)"
    ),
    scores_dir: Annotated[
        Optional[Path], typer.Option(help="saved scores (default: cache, computed when missing)")
    ] = None,
    clamp: bool = typer.Option(
        False, help="clamp the feature to s × max activation in the SAE basis instead of adding"
    ),
) -> None:
    """Steer with one feature on the last prompt token and every generated token; print the text."""
    import math

    from workbench.models import load_model
    from workbench.registry import HookRegistry
    from workbench.sae.feature_lens import feature_logit_lens
    from workbench.sae.loading import load_sae, sae_site
    from workbench.sae.steering import ClampFeature, generation_success, steer_feature
    from workbench.tokens import token_strings

    if max_activation is not None and not (math.isfinite(max_activation) and max_activation > 0):
        raise typer.BadParameter(f"must be a positive number, got {max_activation:g}", param_hint="--max-activation")
    strength = strength or [4.0]
    bad = [s for s in strength if not math.isfinite(s)]
    if bad:
        raise typer.BadParameter(f"must be finite numbers, got {bad}", param_hint="--strength")
    model = load_model()
    s = load_sae(sae)
    if not 0 <= feature < s.cfg.d_sae:
        raise typer.BadParameter(f"feature {feature} out of range 0..{s.cfg.d_sae - 1}")
    if max_activation is None:
        fs = _load_or_compute(model, s, sae, scores_dir, 256)
        if fs.examples is None:
            raise typer.BadParameter(f"the saved scores of {sae} have no top examples; pass --max-activation")
        max_activation = float(fs.examples.max_activation[feature])
        top = fs.lens.top_tokens[feature]
        if max_activation <= 0:
            console.print(
                f"[yellow]feature {feature} never fired on the scoring corpus (max activation 0), so its steering "
                "amount is unknown; pass --max-activation[/yellow]"
            )
            raise typer.Exit(1)
    else:
        top = feature_logit_lens(model, s, features=[feature]).top_tokens[feature]
    console.print(
        f"feature {feature} at {sae_site(s)}: max activation {max_activation:.3g}; logit lens: "
        + " ".join(repr(t) for t in token_strings(model, top[:10].tolist()))
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


def _parse_strengths(spec: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"must be comma-separated numbers such as '2,4,8', got {spec!r}") from None
    if not values:
        raise typer.BadParameter("give at least one strength, e.g. --strengths 2,4,8")
    return values


@app.command()
def replicate(
    saes: Annotated[Optional[list[str]], typer.Argument(help="local SAE names (default: all local SAEs)")] = None,
    small: bool = typer.Option(False, help="a few-minute budget"),
    n_scored: Optional[int] = typer.Option(None, help="output-score this many random features per SAE (default all)"),
    n_rows: int = typer.Option(256, help="held-out sequences for input scores"),
    n_steer: int = typer.Option(12, help="features per group per layer"),
    filter_threshold: float = typer.Option(0.01, help="'filtered random' group: random features with S_out >= this"),
    n_prompts: int = typer.Option(8, help="prompts per feature"),
    tokens: int = typer.Option(16, help="new tokens per generation"),
    strengths: str = typer.Option("2,4,8", help="comma-separated strengths s"),
    out: Annotated[Optional[Path], typer.Option(help="results folder (CSV/JSON; default <results>/sae)")] = None,
    figures: Annotated[Optional[Path], typer.Option(help="figures folder (default figures/)")] = None,
    replot_only: bool = typer.Option(
        False, "--replot", help="only re-summarise the saved results in --out and redraw the figures"
    ),
) -> None:
    """Replicate the paper's findings: score scatter, layer trend, steering success (high vs random vs low)."""
    from workbench.artifacts import read_json
    from workbench.experiments.sae_replication import ReplicationConfig, replot, run_replication
    from workbench.paths import results_dir

    out = out if out is not None else results_dir() / "sae"
    if replot_only:
        if not (out / "replication.json").exists():
            raise typer.BadParameter(
                f"no saved results in {out} (expected {out / 'replication.json'}); run without --replot first"
            )
        replot(out, figures)
        console.print_json(data=read_json(out / "replication.json").get("pooled", {}))
        return

    from workbench.models import load_model
    from workbench.sae.loading import list_local_saes, load_sae

    names = saes or list_local_saes()
    if not names:
        raise typer.BadParameter("no SAEs given and none in saes/")
    try:
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
                strengths=_parse_strengths(strengths),
            )
    except (TypeError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
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
    console.print_json(data={k: res[k] for k in ("pooled", "timing_seconds")})


def bench_command(
    sae: Optional[str] = typer.Option(None, help="local SAE (default: the layer-15 one, else the first)"),
    n_naive: int = typer.Option(32, help="features timed in the naive loop (extrapolated per feature)"),
    batch_size: int = typer.Option(256, help="features per batched forward pass"),
    n_float64: int = typer.Option(8, help="features re-checked with model and SAE in float64 (0 = skip)"),
    json_out: Annotated[Optional[Path], typer.Option(help="also write the numbers as JSON here")] = None,
) -> None:
    """Output scores of every latent of one SAE: batched vs one forward pass per feature."""
    from workbench.artifacts import save_json
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
        f"scores on that subset, float32: max |Δ| {info['max_abs_diff']:.2e} (max relative "
        f"{info['max_rel_diff']:.1e}), {info['n_exactly_equal']}/{info['naive_subset']} bit-identical, "
        f"allclose(rtol 1e-4) = {info['allclose_rtol1e-4']}"
    )
    if "float64_features" in info:
        console.print(
            f"float64 re-check: {info['float64_bit_identical']}/{info['float64_features']} scores bit-identical "
            f"(max |Δ| {info['float64_max_abs_diff']:.1e})"
        )
    if json_out is not None:
        save_json(json_out, info, kind="bench_sae", version=1, digits=None)
