"""The ``workbench`` console command: ``info``, ``bench``, and each area's commands from
``workbench/cli/<area>.py`` (a ``typer.Typer`` named ``app``, or ``commands``/``bench_command``).

Errors caused by the user's input print one line and exit with code 2; ``--debug`` shows the traceback.
"""

import importlib
from typing import Optional, Protocol, cast

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="workbench: probe, steer, lens and patch HookedTransformer models.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: ratios against a baseline measured in the same run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console()


class UsageError(Exception):
    """A command was used wrongly (reported as one line, exit code 2)."""


@app.command()
def info(
    model: str = typer.Option("smollm2-135m-instruct", help="model name"),
    sites: bool = typer.Option(True, help="list the model's sites"),
) -> None:
    """Print the model, its sites and the cache location."""
    from workbench.models import cache_dir, load_model
    from workbench.sites import BLOCK_STREAMS, Site

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
    from workbench.experiments.bench.registry import print_results, run_registry_bench

    print_results(run_registry_bench(repeats=repeats, new_tokens=new_tokens), console)


def _broken(name: str, err: BaseException):
    def command(ctx: typer.Context) -> None:
        raise UsageError(f"the '{name}' commands could not be loaded: {err.__class__.__name__}: {err}")

    command.__doc__ = f"(unavailable: {err.__class__.__name__}: {err})"
    return command


def _attach(module: str, name: str, help_text: Optional[str] = None) -> None:
    """Attach ``module``'s ``app`` (a command group), ``commands`` ({name: fn}) and ``bench_command``.
    If the module fails to import, the command still appears and says why when run."""
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # report, never drop the command silently
        app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
            _broken(name, err)
        )
        return
    sub = getattr(mod, "app", None)
    if sub is not None:
        app.add_typer(sub, name=name, help=help_text)
    for cmd_name, fn in getattr(mod, "commands", {}).items():
        app.command(cmd_name)(fn)
    bench = getattr(mod, "bench_command", None)
    if bench is not None:
        bench_app.command(name)(bench)


_attach("workbench.cli.concepts", "concepts", "Concept vectors: fit, steer, compare.")
_attach("workbench.cli.sae", "sae", "Sparse autoencoders: train, scores, dashboard, steer.")
_attach("workbench.cli.lens", "lens")
_attach("workbench.cli.patching", "patching")
_attach("workbench.cli.tour", "tour")
_attach("workbench.cli.circuit", "circuit")


# Errors a user's input causes: one line, exit code 2. Anything else is a bug and keeps its traceback.
def _user_errors() -> tuple:
    from workbench.artifacts import ArtifactError
    from workbench.models import ModelLoadError

    return (ValueError, TypeError, KeyError, FileNotFoundError, ArtifactError, ModelLoadError, UsageError)


# Bad options raise a ClickException: click's own with older typer, the one of typer's vendored copy of click
# (typer._click) with typer >= 0.29. Both are found in the MRO of typer's public BadParameter.
_CLICK_ERRORS: tuple[type[Exception], ...] = tuple(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException" and issubclass(c, Exception)
)


class _ClickError(Protocol):
    def show(self) -> None: ...  # ClickException.show: the usage line and the message, to stderr


def main(argv: Optional[list] = None) -> None:
    """Console entry point: runs ``app``; user errors print one line and exit 2 (``--debug``: traceback)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        # standalone_mode=False: a command's typer.Exit(code) (and Ctrl-C, typer >= 0.29: Exit(130)) comes back
        # as the return value instead of exiting, so it is passed on here
        code = app(args, standalone_mode=False)
    except typer.Abort:  # Ctrl-C (older typer) or end of input at a prompt
        Console(stderr=True).print("aborted")
        raise SystemExit(130) from None
    except _CLICK_ERRORS as err:  # bad options (click's or typer's own copy of click): a one-line message
        cast(_ClickError, err).show()  # every class in _CLICK_ERRORS is a ClickException
        raise SystemExit(2) from None
    except _user_errors() as err:
        if debug:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        Console(stderr=True, highlight=False).print(f"[red]error:[/] {msg}  (run with --debug for the traceback)")
        raise SystemExit(2) from None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
