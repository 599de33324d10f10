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
# # 03 · SAE features: input features and output features
#
# A sparse autoencoder (SAE) rewrites a residual-stream vector $x$ as a sparse code $f = \mathrm{enc}(x)$ over
# thousands of *features*, and reconstructs $\hat x = \mathrm{dec}(f) = \sum_i f_i\, d_i + b$. Each feature has an
# encoder side (*when does it fire?*) and a decoder side (*what does adding it do?*). Arad, Mueller & Belinkov
# (2025, "SAEs are good for steering — if you select the right features") show that these two sides often
# disagree: some features **react to** certain tokens in the input (*input features*), others **promote** certain
# tokens in the output (*output features*), and rarely both. For steering you want output features.
#
# You will: load our TopK SAEs for SmolLM2 · compute a feature's logit lens · measure the **output score** by
# actually steering, and the **input score** from top-activating examples · see how the two relate and how they
# change with depth · select features by output score and steer with them · write a feature dashboard.

# %%
import os
import torch
import workbench as wb
from workbench.sae.loading import load_sae, list_local_saes, sae_site
from workbench.sae.feature_lens import feature_logit_lens
from workbench.sae.top_examples import collect_top_examples
from workbench.sae.scores import output_scores, output_score_from_logits, input_scores_from_examples
from workbench.sae.corpus import heldout_tokens
from workbench.sae.tables import score_table, select_features, FeatureScores
from workbench.sae.steering import AmplifyFeature, steer_feature, decoder_directions, generation_success
from workbench.prompts import sae_output_score_prompt
from workbench.plots.sae import score_scatter_figure, layer_trend_figure, logit_lens_figure, activation_histogram_figure
from workbench.plots.dashboard import contexts_html
from workbench.experiments.sae_dashboard import write_dashboards

NEUTRAL_PROMPT = sae_output_score_prompt()   # "From my experience," (Arad et al. 2025)

SMALL = os.environ.get("WORKBENCH_BUDGET") == "small"   # the tests run this notebook with a small budget
torch.manual_seed(0)
model = wb.load_model()
print("local SAEs:", list_local_saes())

# %% [markdown]
# ## Our SAEs
#
# `saes/` holds TopK SAEs (4096 features, $k = 64$ active per token) trained with SAELens on the residual stream
# after blocks 6, 15 and 24 (see `saes/README.md` for their reconstruction quality). `load_sae(name)` loads one
# offline; `load_sae(release=..., sae_id=...)` would go to SAELens' pretrained releases (needs the hub).
# A TopK SAE computes
#
# $$f(x) = \mathrm{TopK}_k\big(W_{enc}(x - b_{dec}) + b_{enc}\big), \qquad \mathrm{dec}(f) = W_{dec}^\top f + b_{dec},$$
#
# so feature $i$ writes along its **decoder direction** $d_i$ (row $i$ of $W_{dec}$).

# %%
names = {L: f"smollm2-resid_post-{L}-topk4096" for L in (6, 15, 24)}
saes = {L: load_sae(n) for L, n in names.items()}
sae = saes[24]
print(sae_site(sae, model), sae.cfg.d_sae, "features, k =", sae.cfg.k)

# %% [markdown]
# ## The logit lens of a feature
#
# Push the decoder direction straight through the model's final norm and unembedding:
#
# $$p_i = \mathrm{softmax}\big(W_U\,\mathrm{LN}_f(d_i)\big), \qquad T_i = \text{the } k = 20 \text{ most likely tokens of } p_i.$$
#
# $T_i$ is what the feature *would* say if nothing after its layer changed it.

# %%
n_feats = 256 if SMALL else sae.cfg.d_sae        # the small budget looks at the first 256 features only
feats = torch.arange(n_feats)
lens = feature_logit_lens(model, sae, features=feats)   # one big unembedding, in chunks
tok = model.tokenizer
for i in range(5):
    print(i, [tok.decode([t]) for t in lens.top_tokens[i, :8].tolist()])

# %% [markdown]
# ## The output score: does adding the feature make the model say $T_i$?
#
# The paper measures the decoder side by intervening. On a neutral prompt ("From my experience,"), at the SAE's site
# and the last token, encode $f = \mathrm{enc}(x)$, raise feature $i$ by ten times the largest active feature,
# $f_i \leftarrow f_i + 10\max_j f_j$, and write back $\mathrm{dec}(f') + (x - \mathrm{dec}(f))$ — **the SAE error
# term is kept**, so only the feature changes. With the next-token distribution $q$ and
# $r = \min_{t \in T_i} \mathrm{rank}_q(t)$ (0 = most likely):
#
# $$S_{out}(i) = \Big(1 - \frac{r}{|V|}\Big) \cdot \max_{t \in T_i} q(t).$$
#
# It is high when the intervention puts a lens token at the top with high probability. Here is the intervention
# for one feature, done by hand with a registry steer (`AmplifyFeature`):

# %%
site = sae_site(sae, model)
i = 7
reg = wb.HookRegistry(model)
clean = reg.run(NEUTRAL_PROMPT, need_logits=True)[0, -1]
reg.steer("amp", site, AmplifyFeature(sae, i, 10.0), positions="last")
steered = reg.run(NEUTRAL_PROMPT, need_logits=True)[0, -1]
top = lens.top_tokens[i]
for name, logits in (("clean", clean), ("steered", steered)):
    q = logits.softmax(-1)
    print(f"{name:8s} top next tokens:", [tok.decode([t]) for t in q.topk(5).indices.tolist()],
          f" S_out = {output_score_from_logits(logits[None], top[None]).item():.4f}")
print("T_i:", [tok.decode([t]) for t in top[:8].tolist()])

# %% [markdown]
# `output_scores` computes the same number for many features at once. Each batch row steers a *different*
# feature; the prompt runs only once up to the SAE's layer (read by a registry probe), the earlier positions'
# keys and values are cached once, and only the edited last position runs through the remaining layers. The result
# equals one full forward pass per feature (`output_scores_naive`, tested to agree exactly in float64);
# `workbench bench sae` measures the speed-up.

# %%
s_out = torch.full((sae.cfg.d_sae,), float("nan"))
s_out[feats] = output_scores(model, sae, lens, feats, progress=False)
print(f"feature {i}: batched S_out = {s_out[i].item():.4f}")
print("output-score quantiles (10/50/90 %):", torch.nanquantile(s_out, torch.tensor([0.1, 0.5, 0.9])).tolist())

# %% [markdown]
# ## The input score: does the feature fire *on* $T_i$?
#
# The encoder side is read from the feature's top-activating examples over a corpus (here held-out text the SAEs
# never saw). `collect_top_examples` streams the corpus through registry probes and keeps, per feature, a running
# top-$k$ of examples (bounded memory), with the token where the feature peaked. Then
#
# $$S_{in}(i) = \frac{\#\{\text{top examples whose max-activating token} \in T_i\}}{\#\{\text{top examples}\}}$$
#
# over the first 100 examples (features with fewer than 10 are skipped). A high input score means the feature fires on
# the very tokens it would write — an "input feature" in the paper's terms. SmolLM2 has no BOS token and its first
# position is an attention sink with a huge norm, so position 0 is skipped (as in the SAEs' training).

# %%
corpus = heldout_tokens(model, 16 if SMALL else 128)
all_examples = collect_top_examples(model, saes, corpus, progress=False)   # one pass for the three SAEs
examples = all_examples[24]
s_in = input_scores_from_examples(examples, lens)
table = score_table(model, sae, lens=lens, output=s_out, examples=examples, input=s_in)
scores = FeatureScores(table, lens, examples)
print(f"{corpus.numel():,} tokens; features with >= 10 examples: {int((examples.n_examples >= 10).sum())}")
table.dropna(subset=["input_score", "output_score"]).sort_values("input_score", ascending=False).head(5)[
    ["feature", "input_score", "output_score", "max_activation", "top_tokens"]]

# %% [markdown]
# ## Do high input and high output scores co-occur?
#
# Each dot is a feature. The paper found the top-right corner nearly empty: features that fire on their own
# output tokens are rarely the ones that reliably produce them.

# %%
score_scatter_figure({"resid_post.24": table}, title="Input vs output score, layer 24")

# %% [markdown]
# ## Across depth
#
# The paper reports output features concentrated in later layers. We score a random subset of features of
# each of our three SAEs (their top examples came from the single streaming pass above).

# %%
tables = {}
sub = torch.randperm(4096, generator=torch.Generator().manual_seed(0))[: (64 if SMALL else 1024)]
for L, s in saes.items():
    lz = feature_logit_lens(model, s, features=sub)
    so = torch.full((4096,), float("nan"))
    so[sub] = output_scores(model, s, lz, sub, progress=False)
    tables[L] = score_table(model, s, lens=lz, output=so, examples=all_examples[L])
layer_trend_figure(tables)

# %% [markdown]
# ## Selecting features and steering with them
#
# `select_features` filters by score and returns each feature with its logit-lens tokens. Steering with a feature
# means adding $s \cdot a^{max}_i \cdot d_i$ (with $a^{max}_i$ its largest activation on the corpus) on the last
# prompt token and on every generated token — `positions="last"` in `reg.generate` means exactly that. We score a
# generation by **generation success**: the share of generated tokens that lie in $T_i$. One `generate` call can
# steer a different feature in every row: pass one feature and one strength per row.

# %%
alive = table[table["n_examples"] >= 10]
best = select_features(sae, model=model, scores=alive, top_n=3)
worst = alive.dropna(subset=["output_score"]).sort_values("output_score").head(3)
best[["feature", "output_score", "input_score", "max_activation", "top_tokens"]]

# %%
prompt = "I think that"
n_new = 8 if SMALL else 24
n_each = 2 if SMALL else 3
chosen = best["feature"].tolist()[:n_each] + worst["feature"].tolist()[:n_each]
labels = ["unsteered"] + ["high S_out"] * n_each + ["low S_out"] * n_each
rows = torch.tensor([chosen[0]] + chosen)                  # one generation row per feature
strength = torch.tensor([0.0] + [4.0] * len(chosen))        # row 0: s = 0, i.e. unsteered
reg = wb.HookRegistry(model)
steer_feature(reg, sae, rows, strength, max_activation=examples.max_activation[rows])
g = reg.generate([prompt] * len(rows), n_new)
width = g.tokens.shape[1] - g.new_tokens.shape[1]
success = generation_success(g.new_tokens, g.attention_mask[:, width:].bool(), lens.top_tokens[rows])
for label, f, succ, text in zip(labels, rows.tolist(), success.tolist(), g.completions):
    print(f"{label:10s} feature {f:4d}  success {succ:.2f}  {text!r}")

# %% [markdown]
# The full comparison — high-output-score features against random and low-output-score ones, at several
# strengths, with fluency measured as the perplexity of the generations under the unsteered model — is
# `workbench sae replicate` (results in `results/sae/`, figures in `figures/`).
#
# ## A feature dashboard
#
# Everything about one feature on one page: scores, logit lens, activation histogram and its top contexts with
# the activating token outlined. `write_dashboards` writes one HTML page per feature plus an index.

# %%
f = int(best["feature"].iloc[0])
logit_lens_figure(lens, f, model)

# %%
activation_histogram_figure(examples, f)

# %%
from IPython.display import HTML
HTML(contexts_html(examples, f, model, n=5))

# %%
import tempfile
paths = write_dashboards(model, sae, scores, best["feature"].tolist(), tempfile.mkdtemp(), name=names[24])
print(paths[0])

# %% [markdown]
# ## Exercises
#
# 1. Pick a feature with a high **input** score but a low output score. Read its top contexts: what does it detect?
#    Steer with it — what happens to the text?
# 2. The output score uses a single neutral prompt. Recompute it with three other neutral prompts
#    (`output_scores(..., prompt=...)`) and measure how stable the ranking of features is (Spearman's ρ).
# 3. Feature steering here *adds* $s\,a^{max}_i d_i$. Try `ClampFeature` (set $f_i$ in the SAE basis, error kept)
#    for the same feature: when do the two differ, and why does a TopK SAE make clamping subtle?
# 4. Plot generation success against perplexity for $s \in \{1, 2, 4, 8, 16\}$ for one high-output feature. Where
#    does the text stop being fluent?
# 5. Why must the SAE error term $x - \mathrm{dec}(\mathrm{enc}(x))$ be kept during an intervention? Measure the
#    next-token KL divergence with and without it when no feature is changed.
