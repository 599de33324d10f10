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
# # 01 · Hooks and the registry
#
# Every tool in workbench — concept vectors, SAE features, lenses, patching — reads and edits the model's
# activations through **one** object: `HookRegistry`. This notebook walks through it on the embedded model,
# SmolLM2-135M-Instruct, which runs offline on a CPU.
#
# You will: load the model · name places in it (**sites**) · read activations (**probes**) · edit them
# (**steers**) · steer a generation and check the positions were right · see that no hook is left behind.

# %%
import os
import torch
import workbench as wb

SMALL = os.environ.get("WORKBENCH_BUDGET") == "small"   # the tests run this notebook with a small budget
model = wb.load_model()          # first call converts the GGUF (~40 s), later calls read a safetensors cache
print(model.cfg.n_layers, "layers, d_model =", model.cfg.d_model)

# %% [markdown]
# ## Sites
#
# A `Site` is a layer plus a stream. It accepts TransformerLens' own hook names and a short form.
# The residual stream after block $L$ is $h_L = h_{L-1} + \mathrm{attn}_L(h_{L-1}) + \mathrm{mlp}_L(\cdot)$, and
# `resid_post.L` is where $h_L$ lives.

# %%
site = wb.Site.parse("resid_post.12", model)
print(site, "->", site.hook_name)
print(wb.Site.parse("blocks.3.attn.hook_z"))
try:
    wb.Site.parse("resid_psot.12", model)     # a typo gets close matches, not a silent no-op
except KeyError as err:
    print("KeyError:", err)

# %% [markdown]
# ## Probes: reading activations
#
# `reg.probe(name, site, positions=..., reduce=...)` records into `reg.records[name]`. When only probes are
# active, `reg.run` stops the forward pass right after the deepest probe has read — here layer 12 of 30,
# so less than half the model runs.

# %%
reg = wb.HookRegistry(model)
reg.probe("h12_last", "resid_post.12", reduce="last")
reg.probe("h12_all", "resid_post.12")
texts = ["The cat sat on the mat.", "Paris is the capital of"]
out = reg.run(texts)                # left-padded batch; positions stay per-row correct
print(out, reg.records["h12_last"].shape)
print([r.shape for r in reg.records["h12_all"]])   # rows of different length -> one tensor per row
reg.describe()

# %% [markdown]
# The last-token activation of the padded batch equals what a single unpadded run gives —
# positions are **absolute and unpadded**: position 0 is a row's first real token.

# %%
alone = wb.HookRegistry(model).probe("h", "resid_post.12", reduce="last")
alone.run(texts[1])
print(torch.allclose(alone.records["h"][0], reg.records["h12_last"][1], atol=1e-4))

# %% [markdown]
# ## Steers: editing activations
#
# An edit is a function `(activations, context) -> new activations`. Built-ins: `AddVector(v, α)` computes
# $h \leftarrow h + \alpha v$; `ProjectOut(r)` computes $h \leftarrow h - \hat r \hat r^\top h$; `Clamp(r, c)` sets
# $\hat r^\top h = c$. Here we build a crude "French" direction as the difference of two mean activations
# (the concept module does this properly) and add it while generating.

# %%
probe = wb.HookRegistry(model).probe("m", "resid_post.10", reduce="mean")
probe.run(["Bonjour, je suis très content de vous voir aujourd'hui.", "Le chat est sur la table."])
fr = probe.records["m"].mean(0)
probe.run(["Hello, I am very happy to see you today.", "The cat is on the table."])
en = probe.records["m"].mean(0)
v = fr - en

steer = wb.HookRegistry(model)
steer.steer("french", "resid_post.10", wb.AddVector(v, 1.5), positions="generated")
prompt = wb.chat_prompt(model, "Tell me about your day.")
n = 12 if SMALL else 40
plain = wb.HookRegistry(model).generate(prompt, max_new_tokens=n)
steered = steer.generate(prompt, max_new_tokens=n)
print("plain:  ", plain.completions[0])
print("steered:", steered.completions[0])

# %% [markdown]
# ## Positions during generation
#
# `reg.generate` uses a KV cache: after the prompt, each forward pass sees **one** new token. The registry
# is told which absolute positions each pass covers, so `"generated"`, `"prompt"`, `"last"`, ints and slices
# mean the same at every step as in one forward pass over the whole sequence. Check it: the steered
# generation's last-step logits equal a single full forward over the final sequence with the same steer.

# %%
g = steer.generate(prompt, max_new_tokens=6, return_logits=True, stop_at_eos=False)
full_steer = wb.HookRegistry(model).steer("french", "resid_post.10", wb.AddVector(v, 1.5),
                                          positions=torch.arange(g.tokens.shape[1]) >= int(g.prompt_lengths[0]))
logits = full_steer.run(g.tokens[:, :-1])
print("max |Δ logit| =", (logits[0, -1] - g.logits[0, -1]).abs().max().item())


# %% [markdown]
# ## Order, monitoring, and clean-up
#
# Several steers at one site apply in registration order; a probe says whether it reads `before` or
# `after` them — so you can monitor a concept while steering it. Inside `with reg:` everything works with
# `model(...)`, `run_with_cache` and `model.generate`. When the block exits — even through an exception —
# no hook of ours is left on the model.

# %%
def n_hooks(m):
    return sum(len(mod._forward_hooks) for mod in m.modules())

mon = wb.HookRegistry(model)
unit = v / v.norm()
mon.probe("before", "resid_post.10", reduce="last", when="before")
mon.steer("push", "resid_post.10", wb.AddVector(unit, 8.0))
mon.probe("after", "resid_post.10", reduce="last", when="after")
try:
    with mon:
        print("hooks while active:", n_hooks(model))
        model(model.to_tokens("Hello there"))
        raise RuntimeError("something went wrong mid-experiment")
except RuntimeError as err:
    print("caught:", err)
print("hooks after:", n_hooks(model))
print("projection before/after:", (mon.records["before"] @ unit).item(), (mon.records["after"] @ unit).item())

# %% [markdown]
# ## Exercises
#
# 1. Probe `resid_post.L` for every layer at once and plot the norm of the last-token activation against $L$.
#    Where does it grow fastest?
# 2. Steer with `positions="prompt"` instead of `"generated"`. Does the effect on the completion survive?
#    Why might steering only the prompt be weaker with a KV cache?
# 3. Write your own edit: `lambda acts, ctx: acts * 1.1`. What happens if you write `acts *= 1.1` instead, and why
#    does the registry refuse it?
# 4. Use `ProjectOut(v)` at several layers at once to ablate the French direction. Does the model still answer
#    in French when asked in French?
# 5. Compare `reg.generate` with `model.generate` inside `with reg:` for `positions="generated"`. Which one is right,
#    and how can you tell?
