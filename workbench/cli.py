"""The ``workbench`` console command.

Sub-commands of each module live beside the module (``workbench/<module>/cli.py`` exposes a
``typer.Typer`` named ``app``) and are attached here when importable.
"""

import importlib
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="workbench: probe, steer, lens and patch HookedTransformer models.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: ratios against a baseline measured in the same run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console()


@app.command()
def info(
    model: str = typer.Option("smollm2-135m-instruct", help="model name"),
    sites: bool = typer.Option(True, help="list the model's sites"),
) -> None:
    """Print the model, its sites and the cache location."""
    from .models import cache_dir, load_model
    from .sites import BLOCK_STREAMS, Site

    m = load_model(model)
    cfg = m.cfg
    t = Table(title=f"model: {cfg.model_name}", show_header=False)
    for k in (
        "n_layers",
        "d_model",
        "n_heads",
        "n_key_value_heads",
        "d_head",
        "d_mlp",
        "d_vocab",
        "n_ctx",
        "normalization_type",
        "positional_embedding_type",
        "rotary_base",
        "act_fn",
        "gated_mlp",
    ):
        t.add_row(k, str(getattr(cfg, k, None)))
    t.add_row("parameters", f"{sum(p.numel() for p in m.parameters()) / 1e6:.1f} M")
    t.add_row("cache", str(cache_dir()))
    console.print(t)
    if sites:
        streams = {}
        for name in m.hook_dict:
            s = Site.parse(name)
            streams.setdefault(s.stream, []).append(s.layer)
        st = Table(title="sites (short form 'stream.layer', or the TransformerLens hook name)")
        st.add_column("stream")
        st.add_column("layers")
        st.add_column("example hook")
        for stream, layers in sorted(streams.items(), key=lambda kv: (kv[0] not in BLOCK_STREAMS, kv[0])):
            ls = [layer for layer in layers if layer is not None]
            st.add_row(stream, f"{min(ls)}..{max(ls)}" if ls else "-", Site(ls[0] if ls else None, stream).hook_name)
        console.print(st)


@bench_app.command("registry")
def bench_registry(
    repeats: int = typer.Option(3, help="timed repeats per measurement (median is reported)"),
    new_tokens: int = typer.Option(32, help="tokens to generate"),
) -> None:
    """Probe vs bare forward; steered generation vs Hugging Face generate."""
    from .bench.registry import print_results, run_registry_bench

    print_results(run_registry_bench(repeats=repeats, new_tokens=new_tokens), console)


def _attach(module: str, name: str, help_text: Optional[str] = None) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("workbench"):
            return
        raise
    sub = getattr(mod, "app", None)
    if sub is not None:
        app.add_typer(sub, name=name, help=help_text)
    for cmd_name, fn in getattr(mod, "commands", {}).items():
        app.command(cmd_name)(fn)
    bench = getattr(mod, "bench_command", None)
    if bench is not None:
        bench_app.command(name)(bench)


# Each module's CLI: ``app`` (a command group), ``commands`` ({name: function}, top-level commands),
# ``bench_command`` (becomes ``workbench bench <name>``).
_attach("workbench.concepts.cli", "concepts", "Concept vectors: fit, steer, compare.")
_attach("workbench.sae.cli", "sae", "Sparse autoencoders: train, scores, dashboard, steer.")
_attach("workbench.patching.cli", "patching")
_attach("workbench.tour_cli", "tour")

if __name__ == "__main__":  # pragma: no cover
    app()
