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
# # 04 · Logit lens and tuned lens
#
# What does the model "believe" the next token is, halfway through the network? The **logit lens**
# (nostalgebraist 2020) answers by decoding each layer's residual stream with the model's own final norm and
# unembedding; the **tuned lens** (Belrose et al. 2023) first nudges the residual with a small learned affine
# map per layer, because intermediate layers do not speak exactly the final layer's "language".
#
# You will: read the logit lens of a factual prompt · see why the final norm must be recomputed per layer ·
# watch a steer at one layer change the prediction layer by layer · train a tuned lens and compare the two
# lenses by their KL divergence to the model's output.

# %%
import os
import torch
import workbench as wb
from workbench.lens import (logit_lens, lens_logits, final_norm, lens_corpus, cache_residuals, train_tuned_lens,
                            TunedLensConfig, lens_kl_by_layer)
from workbench.plots.lens import lens_heatmap, target_curve, kl_figure

SMALL = os.environ.get("WORKBENCH_BUDGET") == "small"   # the tests run this notebook with a small budget
model = wb.load_model()
print(model.cfg.n_layers, "layers; final norm:", model.cfg.normalization_type)

# %% [markdown]
# ## The logit lens
#
# With $h_L$ the residual stream after block $L$ (`resid_post.L`), the logit lens is
#
# $$\text{logits}_L = \mathrm{LN}_f(h_L)\, W_U + b_U, \qquad \mathrm{LN}_f(h) = \frac{h}{\sqrt{\tfrac1d\sum_i h_i^2 + \varepsilon}} \odot w \quad(\text{RMSNorm}).$$
#
# For the last layer this *is* the model's output. `logit_lens` reads every `resid_post.L` through registry
# probes and returns, per layer and position, the top-k tokens and the probability and rank of target tokens.

# %%
res = logit_lens(model, "The capital of France is", targets=[" Paris", " London"], k=5)
res.to_frame().query("pos == 4")[["layer", "top", "p_top", "p[ Paris]", "rank[ Paris]", "kl_to_final"]].iloc[::3]

# %%
lens_heatmap(res)

# %%
target_curve(res)

# %% [markdown]
# Early layers mostly predict tokens related to the *current* input token; the answer appears only in the
# last third of the network.
#
# ## Recompute the norm for each layer
#
# The final RMSNorm divides by the root-mean-square of *its* input. A tempting shortcut is to reuse the scale
# that TransformerLens cached for the last layer (`ln_final.hook_scale`). But residual norms grow with depth, so an
# early $h_L$ divided by the last layer's scale is far too small and the softmax is nearly flat. Compare:

# %%
reg = wb.HookRegistry(model)
reg.probe("h6", "resid_post.6")
reg.probe("scale_final", "ln_final.scale")
reg.run("The capital of France is", need_logits=True)
h6 = reg.records["h6"][0, -1]
right = lens_logits(model, h6).softmax(-1)
wrong = ((h6 / reg.records["scale_final"][0, -1]) * model.ln_final.w @ model.W_U + model.b_U).softmax(-1)
print("norm of h6:", h6.norm().item(), " rms scale of final residual:", reg.records["scale_final"][0, -1].item())
print("max prob, recomputed norm:", right.max().item(), "  reusing the cached final scale:", wrong.max().item())

# %% [markdown]
# ## The lens of a steered run
#
# The lens reads through the same registry as every steer, *after* the steer at the same site. So we can add a
# direction at layer $L$ and watch the prediction change layer by layer. Here we push along the unembedding
# direction of `" Rome"` at layer 12.

# %%
v = model.W_U[:, model.tokenizer(" Rome")["input_ids"][0]]
steer = wb.HookRegistry(model).steer("rome", "resid_post.12", wb.AddVector(v / v.norm(), 12.0))
steered = logit_lens(model, "The capital of France is", targets=[" Paris", " Rome"], registry=steer)
plain = logit_lens(model, "The capital of France is", targets=[" Paris", " Rome"])
target_curve({"unsteered": plain, "steered at L12": steered}, title="Steering at layer 12, read by the logit lens")

# %% [markdown]
# Before layer 12 the two runs coincide exactly (the steer is causal in depth); from layer 12 on, `" Rome"`
# rises. Whether it survives to the output depends on how later layers treat the pushed direction.
#
# ## The tuned lens
#
# Belrose et al. (2023) train, for each layer, an affine *translator* and read
#
# $$\text{logits}_L = \mathrm{LN}_f\big(h_L + A_L h_L + b_L\big)\, W_U + b_U,$$
#
# with $A_L, b_L$ **zero-initialised** (so training starts at the logit lens), minimising
# $\mathrm{KL}(p_{\text{final}} \,\|\, p_L)$ on text. We use text the model writes itself (sampled
# continuations of varied English openings), cache every layer's residual once (the probe-only pass stops
# after the last block, so the unembedding is never run), and train briefly on a CPU.

# %%
n_seq, seq_len = (8, 32) if SMALL else (24, 64)
tokens = lens_corpus(model, n_seq, seq_len, progress=False)
print(model.tokenizer.decode(tokens[0]))
heldout = 2 if SMALL else 6
train = cache_residuals(model, tokens[:-heldout], progress=False)
test = cache_residuals(model, tokens[-heldout:], progress=False)
print("train residuals:", tuple(train.shape), " held-out:", tuple(test.shape))

# %%
cfg = TunedLensConfig(steps=15, tokens_per_step=32, layers_per_step=6) if SMALL else \
      TunedLensConfig(steps=200, tokens_per_step=32, layers_per_step=6, max_seconds=240)
tuned, losses = train_tuned_lens(model, train, cfg, progress=False)
print(f"{len(losses)} steps; loss {losses[0]:.3f} -> {losses[-1]:.3f}")
kl = lens_kl_by_layer(model, test, tuned)
kl_figure(kl)

# %%
for L in range(0, model.cfg.n_layers, 5):
    print(f"layer {L:2d}: KL logit lens {kl['logit'][L]:.2f} nats, tuned lens {kl['tuned'][L]:.2f} nats")

# %% [markdown]
# The tuned lens lowers the KL most in the early and middle layers, where the logit lens is far from the
# output. With only a few minutes of CPU training the translators are far from converged; `workbench lens
# "..." --train-tuned` trains longer and saves them as safetensors for reuse (`TunedLens.load`).

# %%
logit_lens(model, "The capital of France is", targets=[" Paris"], tuned=tuned).to_frame().query("pos == 4")[
    ["layer", "top", "p_top", "p[ Paris]", "kl_to_final"]].iloc[::3]

# %% [markdown]
# ## Exercises
#
# 1. Run the logit lens on a chat-formatted prompt (`wb.chat_prompt(model, "...")`). At which layer does the
#    answer first reach rank 0? Is that earlier or later than for the raw prompt?
# 2. Schut et al. (2025) found that multilingual models route through English-like intermediate tokens. Ask for a
#    French completion ("La capitale de l'Allemagne est") and look for English tokens in the middle layers.
# 3. Steer at layers 4, 12 and 20 with the same coefficient. Where does a steer have the largest effect on the
#    output, and how does the lens show the effect being absorbed or amplified?
# 4. Train the tuned lens only with biases ($A_L = 0$). How much of the KL reduction does the bias alone give?
# 5. Why is the KL of the last layer exactly zero, and why must the translator of the last layer be the identity?
