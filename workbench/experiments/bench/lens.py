"""``workbench bench lens``: the logit lens on a long real text against a bare forward pass and
against its limit, with peak memory.

The text is ``n_tokens`` (default 3000) tokens of held-out text from the SAE corpus
(``workbench.sae.corpus.heldout_tokens``, sequences joined), or repeated benchmark prompts when the
corpus cannot be built. Every measurement runs in a fresh subprocess (so one cannot inherit another's
memory), timed as the median of ``repeats`` calls:

* ``forward``: the bare ``model(tokens)`` (TransformerLens, logits returned);
* ``decoder``: the fastest forward pass we have, ``workbench.generation.Decoder`` fed 512 positions
  at a time (the one the lens itself uses when it reads up to the last layer);
* ``unembed``: the lens's unembedding alone — ``n_layers × n_tokens`` rows through ``[chunk, d_model]
  @ W_U`` into a preallocated buffer (a matmul of exactly the lens's shape), and the same FLOPs at
  the measured matmul peak;
* ``lens``: ``logit_lens`` with top-5, two targets and the KL to the final distribution;
* ``targets``: targets only (``k=0, kl=False``); ``topk``: top-5 only (``kl=False``).

The limit of a lens is ``forward + unembed`` (the forward pass it cannot avoid, plus the matmul
that turns every residual into logits); goals: ``lens ≤ 1.2 × limit``, ``targets ≤ 1.5 × forward``.
Because TransformerLens' forward on a long text is dominated by its T × T attention, the report
also gives the strict limit ``decoder + unembed``.
Peak memory is the largest resident set sampled (every 5 ms) during the calls minus the resident
set before them, and ``ru_maxrss`` of the child.
"""

import json
import subprocess
import sys
import threading
import time

import torch

from workbench.experiments.bench import Timing, machine_note, matmul_gflops, rss_mb

MODES = ("forward", "decoder", "unembed", "lens", "targets", "topk")
TARGETS = (" the", ".")


def long_text_tokens(model, n_tokens: int) -> tuple[torch.Tensor, str]:
    """``[1, n_tokens]`` token ids of real text and where they come from."""
    try:
        from workbench.sae.corpus import heldout_tokens

        flat = heldout_tokens(model).flatten()
        if flat.numel() >= n_tokens:
            return flat[:n_tokens][None].long(), "held-out SAE corpus text"
    except (OSError, ValueError, RuntimeError):
        pass
    from workbench.prompts import benchmark_prompts
    from workbench.tokens import encode

    ids: list[int] = []
    prompts = list(benchmark_prompts())
    while len(ids) < n_tokens:
        for p in prompts:
            ids.extend(encode(model, p))
    return torch.tensor(ids[:n_tokens])[None], "repeated benchmark prompts"


class _PeakSampler:
    """Samples this process' resident memory every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.interval)

    def __enter__(self) -> "_PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def measure_mode(mode: str, n_tokens: int, repeats: int, chunk_size: int, threads: int = 0) -> dict:
    """Run one measurement in this process (the child side); returns a JSON-able record.
    ``threads`` > 0 sets torch's intra-op threads (0: torch's default)."""
    import resource

    from workbench.lens import logit_lens, target_ids
    from workbench.models import load_model

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    torch.set_grad_enabled(False)
    if threads > 0:
        torch.set_num_threads(threads)
    model = load_model()
    tokens, source = long_text_tokens(model, n_tokens)
    tids = target_ids(model, list(TARGETS))
    rows = model.cfg.n_layers * tokens.shape[1]
    if mode == "unembed":
        W = model.unembed.W_U
        x = torch.randn(chunk_size, model.cfg.d_model, generator=torch.Generator().manual_seed(0))
        out = torch.empty(chunk_size, model.cfg.d_vocab)
        n_calls = -(-rows // chunk_size)

        def fn():
            for _ in range(n_calls):
                torch.matmul(x, W, out=out)
    elif mode == "forward":

        def fn():
            model(tokens)
    elif mode == "decoder":
        from workbench.generation import Decoder

        def fn():
            dec = Decoder(model, 1, max_positions=tokens.shape[1])
            for a in range(0, tokens.shape[1], 512):
                chunk = tokens[:, a : a + 512]
                dec.step(chunk, torch.ones_like(chunk))
    else:
        kw = {
            "lens": dict(k=5, targets=tids, kl=True),
            "targets": dict(k=0, targets=tids, kl=False),
            "topk": dict(k=5, kl=False),
        }[mode]

        def fn():
            logit_lens(model, tokens, chunk_size=chunk_size, **kw)

    before = rss_mb()
    times = []
    with _PeakSampler() as sampler:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    record = {
        "mode": mode,
        "seconds": sorted(times)[len(times) // 2],
        "times": times,
        "rss_before_mb": before,
        "peak_extra_mb": sampler.peak - before,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tokens": int(tokens.shape[1]),
        "source": source,
        "machine": machine_note(),
    }
    if mode == "unembed":
        record["flops"] = 2.0 * rows * model.cfg.d_model * model.cfg.d_vocab
        record["peak_gflops"] = matmul_gflops(chunk_size, model.cfg.d_model, 4096)
    return record


def _child(mode: str, n_tokens: int, repeats: int, chunk_size: int, threads: int) -> dict:
    args = (mode, n_tokens, repeats, chunk_size, threads)
    cmd = [sys.executable, "-m", "workbench.experiments.bench.lens", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench lens child '{mode}' failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_lens_bench(
    n_tokens: int = 3000, repeats: int = 3, chunk_size: int = 256, threads: int = 0, console=None
) -> list[Timing]:
    """Each mode in its own subprocess, then the ratios (see the module docstring); ``threads`` > 0
    sets torch's intra-op threads in every subprocess."""
    say = console.print if console is not None else (lambda *a, **k: None)
    rec = {}
    for mode in MODES:
        rec[mode] = _child(mode, n_tokens, repeats, chunk_size, threads)
        r = rec[mode]
        say(
            f"{mode}: {r['seconds']:.1f} s (runs {', '.join(f'{t:.1f}' for t in r['times'])}), "
            f"peak +{r['peak_extra_mb']:.0f} MB over {r['rss_before_mb']:.0f} MB; {r['machine']}"
        )
    fwd, un, dec = rec["forward"]["seconds"], rec["unembed"]["seconds"], rec["decoder"]["seconds"]
    limit, strict = fwd + un, dec + un
    at_peak = rec["unembed"]["flops"] / (rec["unembed"]["peak_gflops"] * 1e9)
    shape = f"{rec['forward']['tokens']} tokens ({rec['forward']['source']})"

    def mem(mode: str) -> str:
        return f"peak +{rec[mode]['peak_extra_mb']:.0f} MB"

    rows = [
        Timing(
            "unembedding matmuls of the lens's shape",
            un,
            f"same FLOPs at the matmul peak ({rec['unembed']['peak_gflops']:.0f} GFLOP/s)",
            at_peak,
            f"{rec['unembed']['flops'] / 1e12:.2f} TFLOP",
        ),
        Timing(
            "logit lens: top-5 + 2 targets + KL, every layer and position",
            rec["lens"]["seconds"],
            "limit: bare forward + unembedding matmuls",
            limit,
            f"{shape}; goal ≤ 1.2×; vs the strict limit (decoder forward {dec:.1f} s + unembedding) "
            f"{rec['lens']['seconds'] / strict:.2f}×; {mem('lens')} (forward: {mem('forward')})",
        ),
        Timing(
            "logit lens: targets only (k=0, kl=False)",
            rec["targets"]["seconds"],
            "bare forward model(tokens)",
            fwd,
            f"goal ≤ 1.5×; vs the limit {rec['targets']['seconds'] / limit:.2f}×, the strict limit "
            f"{rec['targets']['seconds'] / strict:.2f}×; {mem('targets')}",
        ),
        Timing(
            "logit lens: top-5 only (kl=False)",
            rec["topk"]["seconds"],
            "limit: bare forward + unembedding matmuls",
            limit,
            f"vs the strict limit {rec['topk']['seconds'] / strict:.2f}×; vs bare forward "
            f"{rec['topk']['seconds'] / fwd:.2f}×; {mem('topk')}",
        ),
    ]
    return rows


if __name__ == "__main__":
    mode_, n_, rep_, chunk_, threads_ = sys.argv[1], *map(int, sys.argv[2:6])
    print(json.dumps(measure_mode(mode_, n_, rep_, chunk_, threads_)))


__all__ = ["MODES", "long_text_tokens", "measure_mode", "run_lens_bench"]
