# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Concepts and steering: probe → CAV → steer, then an honest bake-off
#
# A *concept* (positive sentiment, French, talk about food, a casual register) often corresponds to a
# **direction** in the residual stream. This notebook walks the loop
#
# 1. **data** — contrastive pairs that differ only in the concept;
# 2. **activations** — read them with registry probes (`extract`);
# 3. **probe** — a logistic regression per layer; its normal is a *concept activation vector* (CAV);
# 4. **vectors** — five more ways to get a direction (mean difference, mean-centring, PCA of differences,
#    directional ablation, affine concept editing);
# 5. **TCAV** — does moving along the concept raise a class score?
# 6. **steer** — add or edit the direction while the model generates;
# 7. **judge honestly** — with tools that do not depend on the steered model (VADER, a language
#    identifier, a lexicon), plus fluency (perplexity under the *unsteered* model) and side effects (KL);
# 8. **bake-off** — every method, same layer, prompts, grid and metrics.
#
# Set `WORKBENCH_BUDGET=small` for a quick run (tiny datasets, few prompts, short completions).

# %%
import os
import torch
import pandas as pd

from workbench.models import load_model
from workbench.registry import HookRegistry
from workbench.concepts import (available_concepts, load_concept, extract, fit_vector, layer_sweep, best_layer,
                                steering_edit, ConceptVector)
from workbench.plots.concepts import layer_accuracy_figure, dose_response_figure, bakeoff_figures
from workbench.prompts import neutral_prompts

SMALL = os.environ.get("WORKBENCH_BUDGET", "full") == "small"
N_TRAIN, N_TEST = (16, 8) if SMALL else (200, 60)
LAYERS = [4, 6, 8] if SMALL else list(range(0, 30, 2))
torch.manual_seed(0)
model = load_model()
print("budget:", "small" if SMALL else "full", "| concepts shipped:", available_concepts())

# %% [markdown]
# ## 1 · Concept data
#
# Each shipped concept is a JSONL file (`workbench/data/`) whose first line records its provenance. The
# examples are **contrastive pairs** built from templates × slots: the two sides share every word except
# the concept itself, so a probe cannot succeed by spotting an unrelated token. `ConceptSet` validates
# its input: an empty side, a lopsided split or an over-long text raises a clear error.

# %%
sent = load_concept("sentiment")
for p, n in list(zip(sent.train.positive, sent.train.negative))[:3]:
    print("+", p, "\n-", n)
print(sent.train.provenance)
try:
    from workbench.concepts import ConceptSet
    ConceptSet("broken", ["one text"] * 10, ["other"] * 2)
except ValueError as err:
    print("ConceptSet says:", err)

# %% [markdown]
# `generate_concept_set(model, "describes X vs describes Y", n)` asks the embedded instruct model for
# contrastive sentences, topic by topic (as persona-vector work does); it is seeded, cleans, filters and
# de-duplicates its output. A 135M model writes rough sentences, so the shipped data is template-made.

# %%
from workbench.concepts.generate import generate_concept_set
gen = generate_concept_set(model, "sounds cheerful and happy vs sounds gloomy and sad", n=2, max_new_tokens=16,
                           batch_size=2, seed=0, progress=False)
for p, n in zip(gen.positive, gen.negative):
    print("+", p, "\n-", n)

# %% [markdown]
# ## 2 · Activations and a probe per layer
#
# `extract(model, texts, sites, reduce="mean")` averages each text's residual vectors (skipping the first
# token, an attention sink with ~100× the usual norm). Only probes are active, so the forward pass stops
# right after the deepest requested layer. The result does not depend on batch size or padding side.
#
# The logistic probe $P(c\mid h)=\sigma(w^\top h+b)$ (TCAV, Kim et al. 2018) is fitted per layer on the
# training split and scored on the **held-out** split (the SCAV layer selection, Xu et al. 2024).

# %%
sites = [f"resid_post.{l}" for l in LAYERS]
sweeps, acts = [], {}
for name in (["sentiment", "language"] if SMALL else available_concepts()):
    data = load_concept(name)
    tr, te = data.train.head(N_TRAIN), data.test.head(N_TEST)
    a_tr = extract(model, tr.texts, sites, "mean", progress=False)
    a_te = extract(model, te.texts, sites, "mean", progress=False)
    n, k = len(tr.positive), len(te.positive)
    sweeps.append(layer_sweep({s: (a_tr[s][:n], a_tr[s][n:]) for s in sites},
                              {s: (a_te[s][:k], a_te[s][k:]) for s in sites}, concept=name))
    acts[name] = (a_tr, n)
sweep = pd.concat(sweeps, ignore_index=True)
print(sweep.groupby("concept")["test_accuracy"].max())
layer_accuracy_figure(sweep)

# %% [markdown]
# ## 3 · Six concept vectors
#
# With $h^+$, $h^-$ the activations of the two sides at one site:
#
# | method | vector |
# |---|---|
# | logistic CAV | $v = w/\lVert w\rVert$ of the probe (bias $b$ kept) |
# | mean difference (CAA, ActAdd) | $r=\bar h^+ - \bar h^-$ |
# | mean-centring (Jorgensen et al.) | $\bar h_\text{target} - \bar h_\text{all training}$ |
# | PCA of differences (repeng) | first PC of $\{h^+_i - h^-_i\}$, sign aligned with $r$ |
# | directional ablation (Arditi et al.) | $\hat r$ (remove) and $r$ (induce) |
# | ACE (Marshall et al.) | $r$ and a reference point $\mu_0$ |
#
# Each is a `ConceptVector` (site, direction, method, parameters, bias) saved as safetensors + JSON.

# %%
from workbench.concepts.bakeoff import pool_activations
from workbench.sites import Site
LAYER = 6
site = Site(LAYER, "resid_post")
a_tr, n = acts["sentiment"]
pos, neg = a_tr[site.short][:n], a_tr[site.short][n:]
pool = pool_activations(model, site, 8 if SMALL else 100, "mean")
vectors = {m: fit_vector(m, site, pos, neg, all_training=pool, concept="sentiment")
           for m in ("logistic", "mean_diff", "mean_centring", "pca_diff", "ablation", "ace")}
unit = lambda v: v / v.norm()
print(pd.Series({m: float(unit(v.direction) @ unit(vectors["mean_diff"].direction)) for m, v in vectors.items()},
                name="cosine with the mean difference"))
path = vectors["logistic"].save("/tmp/workbench_sentiment_logistic")
print("round trip:", torch.equal(ConceptVector.load(path).direction, vectors["logistic"].direction))

# %% [markdown]
# ## 4 · TCAV: is the class score sensitive to the concept?
#
# $S(x)=\nabla_h f_k(x)\cdot v$ with $f_k$ the logit of a target token (here `" great"`) at the last
# position; for a sequence we move every token's vector along $v$. The TCAV score is the share of
# inputs with $S>0$. Significance: CAVs against random counterpart sets versus random-vs-random CAVs,
# compared with a two-sided t-test.

# %%
from workbench.concepts.tcav import class_gradients, tcav_score, tcav_significance
inputs = list(neutral_prompts(4 if SMALL else 20))
grads = class_gradients(model, inputs, site, " great")
print("TCAV(sentiment → ' great') =", tcav_score(grads, vectors["logistic"].unit))
res = tcav_significance(grads, pos, pool, n_runs=3 if SMALL else 10, set_size=min(len(pos), len(pool) // 2))
res

# %% [markdown]
# ## 5 · Steering edits
#
# Each edit is a pure function `(acts, ctx) -> new acts` that the registry applies at chosen positions,
# during the prompt and every generated token:
#
# * add: $h \leftarrow h + \alpha v$;
# * **GCAV** (Zhang et al. 2025): the smallest move along $v$ that takes the probe to a target,
#   $\varepsilon=\max\big(0,(\operatorname{logit}p^+ - b - w^\top h)/\lVert w\rVert\big)$, per sample and per
#   position, so each token gets only the push it needs;
# * projection (ablation): $h \leftarrow h - \hat r\hat r^\top h$; ACE: $h \leftarrow h-\hat r\hat r^\top(h-\mu_0)+\alpha r$.
#
# `steering_edit(vector, strength, toward)` builds the edit so that one *strength* means the same length
# (in units of $\lVert r\rVert$) for every method.

# %%
prompts = list(neutral_prompts(3 if SMALL else 6))
reg = HookRegistry(model)
plain = reg.generate(prompts, max_new_tokens=12 if SMALL else 24)
reg.steer("joy", site, steering_edit(vectors["mean_diff"], 8.0, "positive"), positions="all")
happy = reg.generate(prompts, max_new_tokens=12 if SMALL else 24)
pd.DataFrame({"prompt": prompts, "unsteered": plain.completions, "steered +": happy.completions})

# %% [markdown]
# ## 6 · Judging without trusting the model
#
# Success is measured by tools independent of the steered model: VADER for sentiment, `py3langid` for
# French, a hand-written food lexicon, rule-based casual-register markers. Fluency is the perplexity of
# the completion under the **unsteered** model; side effects are $\mathrm{KL}(p_\text{unsteered}\,\|\,p_\text{steered})$
# of the next-token distribution after neutral prompts. `steering_sweep` runs a grid with fixed prompts
# and seeds and returns a tidy table.

# %%
from workbench.concepts.evaluate import steering_sweep
sw = steering_sweep(model, vectors["mean_diff"], [4.0, 8.0] if not SMALL else [8.0],
                    prompts=neutral_prompts(3 if SMALL else 12), max_new_tokens=8 if SMALL else 24, progress=False)
sw.table[["method", "toward", "strength", "success", "perplexity_ratio", "kl", "distinct"]]

# %%
dose_response_figure(sw.table)

# %% [markdown]
# ## 7 · The bake-off
#
# Every method at the same layer, on the same prompts, with the same grid and metrics. For each method
# we read off the best VADER-positive share reachable toward positive, and the lowest toward negative,
# **while perplexity stays within 2× of unsteered**. The frontier plot shows success against fluency.
# The full run's numbers (`workbench concepts compare`) are in `figures/concepts_bakeoff_*`.

# %%
from workbench.concepts.bakeoff import BakeoffConfig, run_bakeoff
config = BakeoffConfig.for_budget("small" if SMALL else "full", concept="sentiment", layer=LAYER)
result = run_bakeoff(model, config, progress=False)
print("winner:", result.winner, f"({result.seconds:.0f} s)")
result.summary

# %%
bakeoff_figures(result)["frontier"]

# %% [markdown]
# ## Exercises
#
# 1. **Which layer steers?** Probe accuracy saturates early on template data. Run `steering_sweep` for the
#    mean difference at layers 2, 6, 10, 14 and plot success against layer. Does the best *probe* layer
#    predict the best *steering* layer?
# 2. **GCAV's targets.** Plot the distribution of per-token pushes $\varepsilon$ on the neutral prompts for
#    several target logits. Why does a strongly regularised probe need targets far beyond $p=0.9999$?
# 3. **Positions.** Steer only the prompt (`positions="prompt"`), only generated tokens, or only the last
#    prompt token (ActAdd-style front vs CAA-style "after the prompt"). Which keeps perplexity lowest for the
#    same success?
# 4. **Harder data.** Generate 50 pairs with `generate_concept_set` for a concept of your own, filter them
#    with a judge, and compare the held-out probe accuracy with the template data. What does the gap tell you?
# 5. **Goodhart check.** Find a strength where VADER says "positive" but the text is degenerate (look at
#    `distinct` and the completions). Which metric in the table catches it?
# 6. **Projections and the attention sink.** The first token's residual vector has a component along $\hat r$
#    roughly 9× larger than other tokens (≈184 vs ≈21 at layer 6), so ablation and ACE move it by ~40 ‖r‖ when they
#    act on `positions="all"`. Rerun them with `positions=slice(1, None)` and compare their frontiers.
# 7. **Language.** Steer toward French with the `language` concept and measure the `py3langid` share. Is
#    English → French easier than French → English for this model?
