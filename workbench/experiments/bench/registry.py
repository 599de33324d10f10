"""``workbench bench registry``: the registry's probe and steered-generation paths against baselines.

1. Probing one site (``resid_post.15`` of 30 layers) vs a bare ``model(tokens)`` on the same batch: the
   probe-only run stops at the site (``stop_at_layer`` + early exit), so the ratio should be < 1.
2. Steered KV-cached generation of N tokens (``reg.generate``) vs Hugging Face ``generate`` (unsteered,
   greedy, KV cache) on the same dequantised weights; TransformerLens' own ``generate`` with the same
   steer is shown as a second baseline.
"""

import torch

from workbench.experiments.bench import Timing, median_time, timing_table

PROMPTS = [
    "The history of the city begins in the",
    "In the morning I usually drink a cup of",
    "Scientists announced on Tuesday that the",
    "My favourite thing about the weekend is",
]


def run_registry_bench(repeats: int = 3, new_tokens: int = 32) -> list[Timing]:
    from workbench.edits import AddVector
    from workbench.models import load_hf_embedded, load_model
    from workbench.registry import HookRegistry
    from workbench.tokens import tokenize

    model = load_model()
    hf, hf_tok = load_hf_embedded()
    rows: list[Timing] = []

    # 1. probe one site vs bare forward (same 4x~10-token batch, repeated to ~256 tokens)
    batch = tokenize(model, PROMPTS * 8, padding_side="left")
    reg = HookRegistry(model).probe("h", "resid_post.15", reduce="last")
    with torch.no_grad():
        bare = median_time(lambda: model(batch.tokens, attention_mask=batch.attention_mask), repeats)
        probe = median_time(lambda: reg.run(batch), repeats)
    n_tok = int(batch.attention_mask.sum())
    rows.append(
        Timing(
            "probe resid_post.15 (reg.run)",
            probe,
            "bare model(tokens)",
            bare,
            f"{batch.tokens.shape[0]}×{batch.tokens.shape[1]} tokens ({n_tok} real)",
        )
    )

    # 2. steered generation vs HF generate
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    steer = HookRegistry(model).steer("s", "resid_post.10", AddVector(v / v.norm(), 4.0), positions="all")
    for prompts in (PROMPTS[:1], PROMPTS):
        b = len(prompts)
        enc = hf_tok(prompts, return_tensors="pt", padding=True, padding_side="left")

        # each closure binds this iteration's inputs (it is timed before the loop moves on)
        def hf_gen(enc=enc):
            with torch.no_grad():
                hf.generate(
                    **enc,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=hf_tok.pad_token_id,
                )

        def ours(prompts=prompts):
            steer.generate(prompts, max_new_tokens=new_tokens, stop_at_eos=False)

        t_hf = median_time(hf_gen, repeats)
        t_ours = median_time(ours, repeats)
        rows.append(
            Timing(
                f"steered reg.generate, batch {b}",
                t_ours,
                "HF generate (unsteered)",
                t_hf,
                f"{new_tokens} new tokens, greedy, KV cache",
            )
        )
        if b == 1:
            toks = tokenize(model, prompts).tokens

            def tl_gen(toks=toks):
                with steer:
                    model.generate(
                        toks,
                        max_new_tokens=new_tokens,
                        do_sample=False,
                        verbose=False,
                        use_past_kv_cache=True,
                        stop_at_eos=False,
                    )

            t_tl = median_time(tl_gen, max(1, repeats - 1))
            rows.append(
                Timing(
                    "steered TransformerLens generate, batch 1",
                    t_tl,
                    "HF generate (unsteered)",
                    t_hf,
                    "for context: TL's own decode loop",
                )
            )
    return rows


def print_results(rows: list[Timing], console) -> None:
    console.print(timing_table(rows, "workbench bench registry (ratio = ours / baseline; < 1 is faster)"))
    probe = rows[0]
    console.print(
        f"probe path: {probe.ratio:.2f}× the bare forward (goal: ≤ 1×) -> {'met' if probe.ratio <= 1 else 'NOT met'}"
    )
    for r in rows[1:]:
        if r.name.startswith("steered reg.generate"):
            console.print(
                f"{r.name}: {r.ratio:.2f}× HF generate (goal: ≤ 1.5×) -> {'met' if r.ratio <= 1.5 else 'NOT met'}"
            )
