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
# # 05 · Localising a circuit: activation patching → AtP → RelP
#
# Which components carry the answer in *"When Mary and John went to the store, John gave a drink to"* → `" Mary"`?
# This is the **indirect object identification** (IOI) task of Wang et al. (2022). We localise it three ways:
#
# 1. **activation patching** — exact, one forward pass per component (slow);
# 2. **attribution patching, AtP** (Nanda 2023; Syed et al. 2023) — a first-order estimate of every component at once
#    from two forward passes and one backward pass;
# 3. **relevance patching, RelP** (Jafari et al. 2025) — the same product, but with LRP propagation coefficients
#    instead of gradients, which makes the estimate far more faithful in deep, non-linear networks.

# %%
import os
import torch
import workbench as wb
from workbench.patching.tasks import ioi_task, check_task, make_metric
from workbench.patching.activation import activation_patch
from workbench.patching.attribution import attribution_patch, RelPRules
from workbench.patching.faithfulness import pearson, FaithfulnessResult
from workbench.plots.patching import grid_heatmap, scatter_figure

SMALL = os.environ.get("WORKBENCH_BUDGET") == "small"   # the tests run this notebook with a small budget
model = wb.load_model()

# %% [markdown]
# ## The task and its metric
#
# Clean prompt: `"When Mary and John went to the store, John gave a drink to"` (answer `" Mary"`). Corrupted prompt: the
# second mention swapped, `"..., Mary gave a drink to"` (answer `" John"`). The token lengths are equal, and every name is
# a single token with its leading space (SmolLM2 has no BOS token). The metric is the logit difference at the last position,
# normalised so that the clean run scores 1 and the corrupted run 0:
#
# $$M = \frac{\overline{LD} - LD_{\text{corr}}}{LD_{\text{clean}} - LD_{\text{corr}}}, \qquad LD = \text{logit}(\text{IO}) - \text{logit}(\text{S}).$$
#
# First we check the model actually does the task, and drop the prompts it fails.

# %%
task = ioi_task(model, 6 if SMALL else 12)
check = check_task(model, task)
print(check.summary())
for d in check.dropped:
    print("dropped:", d)
task = check.kept.head(2 if SMALL else 6)
metric = make_metric(model, task)
print(f"LD clean {metric.ld_clean:.2f}, corrupted {metric.ld_corrupted:.2f}; {task.n} prompts x {task.seq_len} tokens")
tokens = [model.tokenizer.decode([t]) for t in task.clean[0]]
tokens

# %% [markdown]
# ## Activation patching
#
# For a component $a$ at layer $L$, position $t$: run the corrupted prompt, set $a$ to its clean value, and read $M$.
# Each batch row of our implementation is one (patch, prompt) pair: a registry steer with a per-row `[batch, pos]`
# mask writes the clean value, and the forward pass starts at layer $L$ from the cached corrupted residual. The grids
# equal TransformerLens' `get_act_patch_*` functions (tested to 1e-4).

# %%
layers = list(range(0, model.cfg.n_layers, 5)) if SMALL else None      # a subset of layers on a small budget
act = {s: activation_patch(model, task.clean, task.corrupted, metric, s, layers=layers)
       for s in ("resid_pre", "attn_out", "mlp_out")}
grid_heatmap(act["resid_pre"], tokens=tokens, title="Activation patching: resid_pre (NaN = layer not run)")

# %% [markdown]
# In the residual stream, the information moves from the position of the second name `S2` (early layers) to the last
# position (late layers): the model first decides *which name is repeated* and later moves the *other* name to the
# output. Attention heads do the moving; `heads_all_pos` patches one head's output (`attn.z`) at every position.

# %%
heads = activation_patch(model, task.clean, task.corrupted, metric, "heads_all_pos",
                         layers=list(range(18, 30, 3)) if SMALL else None)
grid_heatmap(heads, title="Activation patching: attention heads (all positions)", x_label="head")

# %% [markdown]
# ## Attribution patching (AtP)
#
# A first-order Taylor expansion around the corrupted run gives every component's effect at once:
#
# $$\hat c(a) = \sum_d \big(a_{\text{clean}} - a_{\text{corr}}\big)_d \; \frac{\partial M}{\partial a_d}\Big|_{\text{corr}}.$$
#
# The gradients come from "taps": registry steers $a \mapsto a + \delta$ with a zero leaf $\delta$, so $\partial M/\partial\delta = \partial M/\partial a$.

# %%
streams = ("resid_pre", "attn_out", "mlp_out")
atp = attribution_patch(model, task.clean, task.corrupted, metric, streams, rules=RelPRules.none())
grid_heatmap(atp["mlp_out"], tokens=tokens, title="AtP estimate: mlp_out")

# %% [markdown]
# ## Relevance patching (RelP)
#
# Gradients of a deep network are noisy local slopes. Layer-wise relevance propagation replaces them with coefficients
# that *conserve* relevance layer by layer. RelP obtains them with an ordinary backward pass through a rewritten
# forward (sg = stop-gradient), whose **values are unchanged**:
#
# | layer | rule | rewrite |
# |---|---|---|
# | RMSNorm / LayerNorm | LN-rule | divide by $\mathrm{sg}[\sigma]$ |
# | SiLU / GELU | identity rule | $\varphi(x) \to x \cdot \mathrm{sg}[\varphi(x)/x]$ |
# | gated unit $g = \varphi(a) \odot b$ | half rule | $g/2 + \mathrm{sg}[g/2]$ |
# | attention (optional) | AH-rule / CP-LRP | $\mathrm{sg}[\mathrm{softmax}]$ |
#
# In workbench these are registry steers at `ln*.hook_scale`, `mlp.hook_post` and `attn.hook_pattern`.

# %%
relp = attribution_patch(model, task.clean, task.corrupted, metric, streams, rules=RelPRules())
relp_attn = attribution_patch(model, task.clean, task.corrupted, metric, streams, rules=RelPRules(attention=True))
grid_heatmap(relp["mlp_out"], tokens=tokens, title="RelP estimate: mlp_out")

# %% [markdown]
# ## How faithful is each estimate?
#
# The Pearson correlation with activation patching over all (layer, position) cells — the paper's measure. On GPT-2 small
# the paper reports, for MLP outputs, AtP 0.195 → RelP 0.992, and for the residual stream 0.753 → 0.968. Here is ours
# (on the layers that were patched):

# %%
rows = [l for l in range(model.cfg.n_layers) if not torch.isnan(act["resid_pre"][l]).any()]
pick = lambda g: g[rows]
res = FaithfulnessResult("ioi", list(streams), {s: pick(act[s]) for s in streams},
                         {"atp": {s: pick(atp[s]) for s in streams}, "relp": {s: pick(relp[s]) for s in streams},
                          "relp_attn": {s: pick(relp_attn[s]) for s in streams}})
res.to_frame().pivot(index="component", columns="method", values="pearson_r").round(3)

# %%
scatter_figure(res, "mlp_out")

# %%
scatter_figure(res, "resid_pre")

# %% [markdown]
# Points on the dashed line are components whose estimate equals the patched effect. `workbench patch --task ioi
# --method all` measures the full grids for the CLI's default budget and writes these figures for each component type.
#
# A property to keep in mind: RelP with every rule (including the AH-rule) *conserves* relevance. For a model without
# biases, $\sum_{t,d} a \cdot \partial' M/\partial a$ is the same at every layer and equals $M$ — the tests check
# this on a tiny model; plain gradients do not have it.

# %% [markdown]
# ## Exercises
#
# 1. Patch `heads_by_pos` for the heads with the largest effect above. At which positions do they matter — `S2`, the
#    last position, or both? Which heads look like the paper's *name movers*?
# 2. Build the capital task (`workbench.patching.tasks.capital_task`) and compare AtP and RelP on it. Is the gap between
#    them as large as on IOI? Why might factual recall be harder for first-order methods?
# 3. Turn off one RelP rule at a time (`RelPRules(norm=False)`, `RelPRules(identity=False)`, ...). Which rule accounts
#    for most of RelP's gain on `mlp_out`?
# 4. AtP's estimate is exact when the metric is linear in $a$. Make the corruption smaller (e.g. interpolate the clean
#    and corrupted embeddings) and check that AtP's correlation rises.
# 5. Time `activation_patch` against `attribution_patch` for all three streams (`workbench bench patching`). How does the
#    ratio scale with the number of layers and positions?
