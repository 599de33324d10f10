"""``workbench concepts fit|steer|compare|realtext|monitor|refusal|compose|build-data``, ``bench concepts``."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Concept vectors: fit probes and vectors, steer, run the steering bake-off.", no_args_is_help=True
)
console = Console()


def _parse_layers(spec: str, n_layers: int) -> list[int]:
    """``"0-29"``, ``"4,8,12"`` or ``"2-20:2"`` (every 2nd)."""
    try:
        if "-" in spec:
            rng, _, step = spec.partition(":")
            a, b = (int(x) for x in rng.split("-"))
            layers = list(range(a, b + 1, int(step) if step else 1))
        else:
            layers = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"layers must look like '0-29', '2-20:2' or '4,8,12', got {spec!r}") from None
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if not layers or bad:
        raise typer.BadParameter(f"layers {bad or spec} are outside 0..{n_layers - 1}")
    return layers


@app.command()
def fit(
    concept: Annotated[
        Optional[list[str]], typer.Option("--concept", "-c", help="concept name(s) in workbench/data [sentiment]")
    ] = None,
    layers: str = typer.Option("0-29", help="layers to sweep the probe over: '0-29', '2-20:2' or '4,8,12'"),
    layer: Optional[int] = typer.Option(None, help="layer to fit the vectors at (default: the best probe layer)"),
    reduce: str = typer.Option("mean", help="'mean' (tokens after the first) or 'last'"),
    n_train: int = typer.Option(200, help="training pairs per concept"),
    out: Annotated[
        Optional[Path], typer.Option(help="directory for the vectors (safetensors + JSON) [vectors]")
    ] = None,
    figures: Annotated[
        Optional[Path],
        typer.Option(help="directory for the layer-sweep figure and table [WORKBENCH_FIGURES or figures]"),
    ] = None,
) -> None:
    """Sweep logistic probes over layers (held-out accuracy), then fit and save all six vectors."""
    import pandas as pd

    from workbench.artifacts import save_table
    from workbench.concepts.bakeoff import pool_activations
    from workbench.concepts.data import load_concept
    from workbench.concepts.extract import extract
    from workbench.concepts.methods import METHODS
    from workbench.concepts.probe import best_layer, layer_sweep
    from workbench.concepts.vectors import fit_vector
    from workbench.experiments.export import save_figure
    from workbench.models import load_model
    from workbench.paths import figures_dir
    from workbench.plots.concepts import layer_accuracy_figure
    from workbench.sites import Site

    concept = list(concept or ["sentiment"])
    out = out if out is not None else Path("vectors")
    figures = figures_dir(figures)

    if reduce not in ("mean", "last"):
        raise typer.BadParameter(f"reduce must be 'mean' or 'last', got {reduce!r}")
    if n_train < 1:
        raise typer.BadParameter(f"n_train must be >= 1, got {n_train}")

    model = load_model()
    layer_list = _parse_layers(layers, model.cfg.n_layers)
    sweeps, pools = [], {}
    summary = Table(title="logistic probe, held-out accuracy")
    for col in ("concept", "best layer", "held-out acc.", "vectors fitted at", "saved to"):
        summary.add_column(col)
    for name in concept:
        data = load_concept(name)
        if data.test is None:
            raise typer.BadParameter(f"concept {name!r} has no held-out split; the layer sweep needs one")
        train, test = data.train.head(n_train), data.test
        sites = [f"resid_post.{layer_}" for layer_ in layer_list]
        console.print(f"[bold]{name}[/]: extracting {len(train)} + {len(test)} texts at {len(sites)} layers")
        tr, te = extract(model, train.texts, sites, reduce), extract(model, test.texts, sites, reduce)
        n, k = len(train.positive), len(test.positive)
        sweep = layer_sweep(
            {s: (tr[s][:n], tr[s][n:]) for s in sites}, {s: (te[s][:k], te[s][k:]) for s in sites}, concept=name
        )
        sweeps.append(sweep)
        best = best_layer(sweep)
        site = Site.parse(f"resid_post.{layer}") if layer is not None else Site.parse(best)
        if site.short in tr:
            acts = tr[site.short]
        else:
            acts = extract(model, train.texts, site, reduce)[site.short]
        if site not in pools:
            pools[site] = pool_activations(model, site, 100, reduce)
        pool = pools[site]
        target = out / name
        for method in METHODS:
            vec = fit_vector(
                method,
                site,
                acts[:n],
                acts[n:],
                all_training=pool,
                concept=name,
                extra_params={"reduce": reduce, "n_train": n, "layer": site.layer},
            )
            vec.save(target / f"{method}_{site.short}")
        acc = float(sweep.loc[sweep["site"] == best, "test_accuracy"].iloc[0])
        summary.add_row(name, best, f"{acc:.3f}", site.short, str(target))
    table = pd.concat(sweeps, ignore_index=True)
    save_table(table, figures / "concepts_probe_accuracy_by_layer.csv")
    save_figure(layer_accuracy_figure(table), "concepts_probe_accuracy_by_layer", directory=figures)
    console.print(summary)


@app.command()
def steer(
    vector: Annotated[Path, typer.Argument(help="a saved ConceptVector (path stem, .json or .safetensors)")],
    strength: float = typer.Option(8.0, help="strength in units of ‖μ⁺ − μ⁻‖ (see steering_edit)"),
    toward: str = typer.Option("positive", help="'positive' or 'negative'"),
    prompt: Annotated[
        Optional[list[str]], typer.Option("--prompt", "-p", help="prompt(s); default: 6 neutral prompts")
    ] = None,
    max_new_tokens: int = typer.Option(24, help="tokens to generate"),
    positions: str = typer.Option("all", help="positions to steer: all | prompt | generated | last"),
) -> None:
    """Print unsteered and steered completions side by side, with the independent judge's verdict."""
    from workbench.concepts.judges import JUDGES
    from workbench.concepts.steering import steering_edit
    from workbench.concepts.vectors import ConceptVector
    from workbench.models import load_model
    from workbench.prompts import neutral_prompts
    from workbench.registry import HookRegistry

    if toward not in ("positive", "negative"):
        raise typer.BadParameter(f"toward must be 'positive' or 'negative', got {toward!r}")
    vec = ConceptVector.load(vector)
    steering_edit(vec, strength, toward)  # a bad strength fails here, before the model loads
    prompts = list(prompt or ()) or list(neutral_prompts(6))
    model = load_model()
    vec.check_model(model)
    reg = HookRegistry(model)
    plain = reg.generate(prompts, max_new_tokens=max_new_tokens)
    reg.steer("concept", vec.site, steering_edit(vec, strength, toward), positions=positions)
    steered = reg.generate(prompts, max_new_tokens=max_new_tokens)
    judge = JUDGES.get(vec.concept)
    t = Table(
        title=f"{vec.concept or 'concept'} · {vec.method} at {vec.site.short} · {toward} × {strength:g}",
        show_lines=True,
    )
    t.add_column("prompt", style="bold")
    t.add_column("unsteered")
    t.add_column(f"steered toward {toward}")
    for p, a, b in zip(prompts, plain.completions, steered.completions):
        if judge is not None:
            a, b = (
                f"{a}\n[dim]{judge.name}: {judge.score(a):+.2f}[/]",
                f"{b}\n[dim]{judge.name}: {judge.score(b):+.2f}[/]",
            )
        t.add_row(p, a, b)
    console.print(t)


@app.command()
def compare(
    concept: str = typer.Option("sentiment", help="concept to steer"),
    layer: int = typer.Option(6, help="resid_post layer shared by every method"),
    budget: str = typer.Option("full", help="'full' or 'small' (a tiny run)"),
    grid: Optional[str] = typer.Option(None, help="strengths, e.g. '4,8,12' (units of ‖μ⁺ − μ⁻‖)"),
    prompts: Optional[int] = typer.Option(None, help="number of neutral prompts (the bootstrap's units)"),
    max_new_tokens: Optional[int] = typer.Option(None, help="tokens per completion"),
    seeds: Optional[int] = typer.Option(None, help="sampling seeds per prompt (0, 1, ...)"),
    controls: Optional[int] = typer.Option(None, help="random directions in the norm-matched control (0 = none)"),
    toward: str = typer.Option("both", help="'both', 'positive' or 'negative'"),
    hf_reference: bool = typer.Option(False, help="also time Hugging Face generate at the same batch size"),
    completions: bool = typer.Option(True, help="write the per-completion CSV"),
    out: Annotated[
        Optional[Path], typer.Option(help="directory for the table, summary and figures [WORKBENCH_FIGURES or figures]")
    ] = None,
) -> None:
    """The bake-off: every method on the same concept, layer, prompts, seeds and grid, against a random
    control, with bootstrap intervals; writes figures/, CSV, a summary JSON and a Markdown report."""
    from workbench.concepts.bakeoff import BakeoffConfig
    from workbench.experiments.bakeoff import run_and_save
    from workbench.models import load_model

    over = {"concept": concept, "layer": layer}
    if grid:
        try:
            over["grid"] = tuple(float(x) for x in grid.split(","))
        except ValueError:
            raise typer.BadParameter(f"grid must be comma-separated numbers, got {grid!r}") from None
    if prompts:
        over["n_prompts"] = prompts
    if max_new_tokens:
        over["max_new_tokens"] = max_new_tokens
    if seeds is not None:
        if seeds < 1:
            raise typer.BadParameter(f"seeds must be >= 1, got {seeds}")
        over["seeds"] = tuple(range(seeds))
    if controls is not None:
        over["controls"] = controls
    if toward not in ("both", "positive", "negative"):
        raise typer.BadParameter(f"toward must be 'both', 'positive' or 'negative', got {toward!r}")
    if toward != "both":
        over["toward"] = (toward,)
    config = BakeoffConfig.for_budget(budget, **over)
    result, paths = run_and_save(load_model(), config, out, completions=completions, hf_reference=hf_reference)
    print_summary(result)
    console.print(f"wrote {', '.join(paths.values())}")


@app.command()
def realtext(
    budget: str = typer.Option("full", help="'full' or 'small' (a tiny run)"),
    layer: int = typer.Option(6, help="resid_post layer of the steering comparison"),
    out: Annotated[
        Optional[Path], typer.Option(help="directory for the tables, figures and report [WORKBENCH_FIGURES or figures]")
    ] = None,
) -> None:
    """Template vs human-rated real sentiment text: probe transfer by layer, vector cosines, steering."""
    from workbench.experiments.steering_realtext import BUDGETS, run_realtext
    from workbench.models import load_model

    if budget not in BUDGETS:
        raise typer.BadParameter(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    result = run_realtext(load_model(), budget=budget, layer=layer, directory=out)
    console.print(f"wrote {', '.join(result['paths'].values())}")


@app.command()
def monitor(
    budget: str = typer.Option("full", help="'full' or 'small' (a tiny run)"),
    layer: int = typer.Option(6, help="resid_post layer steered and monitored"),
    strength: float = typer.Option(8.0, help="steering strength (× ‖μ⁺ − μ⁻‖)"),
    out: Annotated[
        Optional[Path], typer.Option(help="directory for the table, figures and report [WORKBENCH_FIGURES or figures]")
    ] = None,
) -> None:
    """Monitor the sentiment projection token by token while steering; correlate it with VADER."""
    from workbench.experiments.steering_monitor import BUDGETS, run_monitor
    from workbench.models import load_model

    if budget not in BUDGETS:
        raise typer.BadParameter(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    result = run_monitor(load_model(), budget=budget, layer=layer, strength=strength, directory=out)
    console.print(f"wrote {', '.join(result['paths'].values())}")


@app.command()
def refusal(
    budget: str = typer.Option("full", help="'full' or 'small' (a tiny run)"),
    out: Annotated[
        Optional[Path], typer.Option(help="directory for the rates and report [WORKBENCH_FIGURES or figures]")
    ] = None,
) -> None:
    """The refusal study's first step: unsteered refusal rates on harmful and harmless requests."""
    from workbench.experiments.steering_refusal import BUDGETS, run_refusal
    from workbench.models import load_model

    if budget not in BUDGETS:
        raise typer.BadParameter(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    result = run_refusal(load_model(), budget=budget, directory=out)
    console.print(f"proceed: {result['proceed']}; wrote {', '.join(result['paths'].values())}")


@app.command()
def compose(
    budget: str = typer.Option("full", help="'full' or 'small' (a tiny run)"),
    shared_layer: int = typer.Option(6, help="the layer of the summed and the composed schemes"),
    sentiment_layer: int = typer.Option(6, help="sentiment's own layer"),
    french_layer: int = typer.Option(10, help="French's own layer"),
    sentiment_strength: float = typer.Option(8.0, help="sentiment strength (× ‖μ⁺ − μ⁻‖)"),
    french_strength: float = typer.Option(8.0, help="French strength (× ‖μ⁺ − μ⁻‖)"),
    out: Annotated[
        Optional[Path], typer.Option(help="directory for the table, figure and report [WORKBENCH_FIGURES or figures]")
    ] = None,
) -> None:
    """Sentiment and English → French steered at once: summed, own layers, composed edits."""
    from workbench.experiments.steering_compose import BUDGETS, run_compose
    from workbench.models import load_model

    if budget not in BUDGETS:
        raise typer.BadParameter(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    if sentiment_layer == french_layer:
        raise typer.BadParameter("sentiment_layer and french_layer must differ ('each at its own layer')")
    result = run_compose(
        load_model(),
        budget=budget,
        shared_layer=shared_layer,
        own_layers=(sentiment_layer, french_layer),
        strengths=(sentiment_strength, french_strength),
        directory=out,
    )
    console.print(f"wrote {', '.join(result['paths'].values())}")


@app.command("build-data")
def build_data(
    out: Annotated[
        Optional[Path], typer.Option(help="directory for the JSONL files (default: the package's data/)")
    ] = None,
    n_train: int = typer.Option(200, help="training pairs per concept"),
    n_test: int = typer.Option(60, help="held-out pairs per concept"),
    seed: int = typer.Option(0, help="sampling seed"),
) -> None:
    """Rebuild the shipped template concept files (sentiment, language, topic_food, style_casual)."""
    from workbench.concepts.templates import write_all

    if n_train < 1 or n_test < 1:
        raise typer.BadParameter(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    for path in write_all(out, n_train, n_test, seed):
        console.print(f"wrote {path}")


def print_summary(result) -> None:
    """The summary with every number's interval, the winners and the generation speed."""
    from workbench.concepts.bakeoff import interval_text
    from workbench.plots.concepts import method_label

    s = result.summary
    c = result.config
    t = Table(
        title=f"bake-off: {c.concept} at {c.site.short}, {c.n_prompts} prompts × {len(c.seeds)} seeds — "
        f"winner: {result.winner} ({result.seconds:.0f} s); {100 * c.level:g} % intervals over prompts"
    )
    for header in ("method", "+ share", "+ str", "+ ppl×", "− share", "− str", "− ppl×", "range"):
        t.add_column(header)
    for _, row in s.iterrows():
        cells = ["random (control)" if row.get("is_control") else method_label(row["method"])]
        for side in ("positive", "negative"):
            strength = row.get(f"{side}_strength", float("nan"))
            cells += [
                interval_text(row, f"{side}_success"),
                "–" if strength != strength else f"{strength:g}",
                interval_text(row, f"{side}_ppl_ratio"),
            ]
        cells.append(interval_text(row, "controllable_range"))
        t.add_row(*cells)
    console.print(t)
    console.print(f"winners: {result.winners}")
    timing = result.timing
    if timing is not None:
        console.print(
            f"generation: {timing.tokens_per_second:.0f} tokens/s "
            f"({timing.decode_tokens} tokens, {timing.calls} calls of up to {timing.batch_size} rows)"
        )


def bench_command(
    n_texts: int = typer.Option(64, help="texts to extract"),
    layer: int = typer.Option(8, help="site resid_post.<layer> to extract"),
    repeats: int = typer.Option(2, help="timed repeats (median)"),
    bakeoff_budget: str = typer.Option("small", help="bake-off budget to time: 'small' or 'full'"),
) -> None:
    """Extraction tokens/s against a bare forward pass on the same texts; wall time of the bake-off."""
    from workbench.experiments.bench.concepts import print_results, run_concepts_bench

    print_results(
        run_concepts_bench(n_texts=n_texts, layer=layer, repeats=repeats, bakeoff_budget=bakeoff_budget), console
    )
