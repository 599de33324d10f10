"""Function vectors (Todd et al. 2024, "Function vectors in large language models"), with the
mean-centred variant (Jorgensen et al. 2023, "Improving activation steering in language models with
mean-centring").

* In-context prompts ``"hot: cold\\nbig: small\\n…\\nX:"`` (k demonstrations and a query), and the same
  prompts with the demonstrations' labels *shuffled* (a derangement: every label moves), which keeps
  the format but breaks the input → output mapping.
* ``ō_{L,h}``: the mean output ``z̄_{L,h} W_O^{L,h}`` of head (L, h) at the last token over the clean
  in-context prompts.
* Causal indirect effect (CIE) of a head: on the shuffled prompts, set its ``z`` at the last token
  to ``z̄_{L,h}`` and measure the increase in the probability of the correct answer's first token,
  averaged over prompts. One batch row per (head, prompt).
* Function vector: ``FV = Σ_{top heads} ō_{L,h}``; mean-centred: ``Σ_{top heads} (ō_{L,h} − ō^base_{L,h})``
  with ``ō^base`` the same mean over the in-context prompts of *other* tasks (the mean of the
  distribution the task is one part of).
* Evaluation: top-1 accuracy of the answer's first token on held-out words, zero-shot (``"X:"``), with
  the FV added to ``resid_post.L`` at the last token for each layer L, and in context.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from jaxtyping import Float
from torch import Tensor

from ..edits import AddVector, EditContext
from ..registry import HookRegistry
from ..tokens import Batch, tokenize
from ..validation import check_int
from .checks import check_layer, logits_of, recorded

# Word pairs; only pairs whose query and answer start with different tokens are usable, and the
# answer is scored by its first token (with its leading space).
FV_TASKS: dict[str, tuple[tuple[str, str], ...]] = {
    "antonym": (
        ("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"), ("good", "bad"),
        ("light", "dark"), ("open", "closed"), ("high", "low"), ("left", "right"), ("black", "white"),
        ("rich", "poor"), ("hard", "soft"), ("wet", "dry"), ("early", "late"), ("strong", "weak"),
        ("day", "night"), ("love", "hate"), ("true", "false"), ("full", "empty"), ("old", "new"),
        ("long", "short"), ("thick", "thin"), ("heavy", "light"), ("loud", "quiet"), ("clean", "dirty"),
        ("cheap", "expensive"), ("easy", "difficult"), ("safe", "dangerous"), ("inside", "outside"),
        ("above", "below"), ("before", "after"), ("first", "last"), ("win", "lose"), ("buy", "sell"),
        ("push", "pull"), ("give", "take"), ("begin", "end"), ("front", "back"), ("north", "south"),
        ("east", "west"), ("top", "bottom"), ("near", "far"), ("alive", "dead"), ("wide", "narrow"),
        ("sweet", "sour"), ("friend", "enemy"), ("war", "peace"), ("always", "never"), ("more", "less"),
        ("yes", "no"), ("on", "off"), ("in", "out"), ("come", "go"), ("accept", "reject"), ("arrive", "leave"),
        ("asleep", "awake"), ("brave", "afraid"), ("deep", "shallow"), ("fat", "thin"), ("guilty", "innocent"),
        ("hungry", "full"), ("increase", "decrease"), ("male", "female"), ("maximum", "minimum"),
        ("modern", "ancient"), ("positive", "negative"), ("private", "public"), ("question", "answer"),
        ("remember", "forget"), ("rough", "smooth"), ("success", "failure"), ("tight", "loose"),
        ("winter", "summer"), ("wrong", "right"), ("young", "old"),
    ),
    "capital": (
        ("France", "Paris"), ("Japan", "Tokyo"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
        ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("England", "London"),
        ("Greece", "Athens"), ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Norway", "Oslo"),
        ("Poland", "Warsaw"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Canada", "Ottawa"),
        ("Portugal", "Lisbon"), ("Sweden", "Stockholm"), ("Cuba", "Havana"), ("Hungary", "Budapest"),
        ("Thailand", "Bangkok"), ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
        ("Syria", "Damascus"), ("Lebanon", "Beirut"), ("Denmark", "Copenhagen"), ("Finland", "Helsinki"),
        ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"), ("Chile", "Santiago"), ("Colombia", "Bogota"),
        ("Venezuela", "Caracas"), ("Australia", "Canberra"), ("Korea", "Seoul"), ("Vietnam", "Hanoi"),
        ("Philippines", "Manila"), ("Indonesia", "Jakarta"), ("Nigeria", "Abuja"), ("Ukraine", "Kyiv"),
        ("Romania", "Bucharest"), ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"), ("Croatia", "Zagreb"),
        ("Czechia", "Prague"), ("Scotland", "Edinburgh"), ("Wales", "Cardiff"), ("Morocco", "Rabat"),
        ("Pakistan", "Islamabad"), ("Afghanistan", "Kabul"), ("Nepal", "Kathmandu"), ("Jamaica", "Kingston"),
    ),
    "english_french": (
        ("cat", "chat"), ("dog", "chien"), ("house", "maison"), ("water", "eau"), ("bread", "pain"),
        ("book", "livre"), ("car", "voiture"), ("tree", "arbre"), ("sun", "soleil"), ("moon", "lune"),
        ("red", "rouge"), ("green", "vert"), ("blue", "bleu"), ("black", "noir"), ("white", "blanc"),
        ("big", "grand"), ("small", "petit"), ("man", "homme"), ("woman", "femme"), ("child", "enfant"),
        ("friend", "ami"), ("day", "jour"), ("night", "nuit"), ("city", "ville"), ("school", "école"),
        ("apple", "pomme"), ("cheese", "fromage"), ("milk", "lait"), ("wine", "vin"), ("fish", "poisson"),
        ("horse", "cheval"), ("bird", "oiseau"), ("flower", "fleur"), ("sea", "mer"), ("mountain", "montagne"),
        ("river", "rivière"), ("door", "porte"), ("window", "fenêtre"), ("chair", "chaise"), ("hand", "main"),
        ("head", "tête"), ("heart", "cœur"), ("love", "amour"), ("world", "monde"), ("king", "roi"),
        ("queen", "reine"), ("thank", "merci"), ("hello", "bonjour"), ("yes", "oui"), ("week", "semaine"),
        ("year", "année"), ("family", "famille"), ("beautiful", "beau"), ("good", "bon"), ("new", "nouveau"),
        ("garden", "jardin"), ("kitchen", "cuisine"), ("boat", "bateau"), ("train", "train"), ("sky", "ciel"),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ICLTask:
    """A word task split into demonstration pairs and held-out test pairs."""

    name: str
    train: tuple[tuple[str, str], ...]
    test: tuple[tuple[str, str], ...]


def icl_task(model, name: str, *, n_test: int = 25, seed: int = 0) -> ICLTask:
    """The pairs of ``FV_TASKS[name]`` whose answer's first token differs from the query's, split
    into ``n_test`` held-out pairs and the rest for demonstrations."""
    if name not in FV_TASKS:
        raise ValueError(f"unknown function-vector task {name!r}; known: {', '.join(FV_TASKS)}")
    check_int("n_test", n_test, min=1)
    pairs = [p for p in FV_TASKS[name] if answer_token(model, p[1]) != answer_token(model, p[0])]
    rng = random.Random(seed)
    rng.shuffle(pairs)
    if len(pairs) < n_test + 6:
        raise ValueError(f"task {name!r} has {len(pairs)} usable pairs; n_test={n_test} leaves too few demonstrations")
    return ICLTask(name, tuple(pairs[n_test:]), tuple(pairs[:n_test]))


def answer_token(model, word: str) -> int:
    """The first token of ``" " + word`` (how the answer follows ``"X:"``)."""
    return int(model.tokenizer(" " + word, add_special_tokens=False)["input_ids"][0])


def _prompt(demos: Sequence[tuple[str, str]], query: str) -> str:
    return "".join(f"{x}: {y}\n" for x, y in demos) + f"{query}:"


def _derangement(rng: random.Random, n: int) -> list[int]:
    while True:
        p = list(range(n))
        rng.shuffle(p)
        if all(i != j for i, j in enumerate(p)):
            return p


def icl_prompts(
    task: ICLTask, queries: Sequence[tuple[str, str]], k: int, *, seed: int = 0, shuffled: bool = False
) -> list[str]:
    """One k-shot prompt per query, demonstrations drawn from ``task.train`` (never the query);
    ``shuffled`` permutes the demonstrations' labels (a derangement). The same ``seed`` draws the
    same demonstrations with or without shuffling, so the two prompt sets are paired."""
    check_int("k", k, min=0)
    rng = random.Random(seed)
    perm_rng = random.Random(seed + 1)
    out = []
    for q in queries:
        pool = [p for p in task.train if p[0] != q[0]]
        demos = rng.sample(pool, k)
        if shuffled and k > 1:
            perm = _derangement(perm_rng, k)
            demos = [(demos[i][0], demos[perm[i]][1]) for i in range(k)]
        out.append(_prompt(demos, q[0]))
    return out


def _last_logits(model, reg: HookRegistry, batch: Batch) -> Tensor:
    with torch.no_grad():
        return logits_of(reg.run(batch, need_logits=True))[
            :, -1
        ]  # left padding: the last column is every row's last token


def mean_head_outputs(model, prompts: Sequence[str], *, batch_size: int = 16) -> Float[Tensor, "layer head d_head"]:
    """``z̄_{L,h}``: mean ``hook_z`` at the last token over ``prompts``."""
    check_int("batch_size", batch_size, min=1)
    if len(prompts) == 0:
        raise ValueError("mean_head_outputs needs at least one prompt")
    total = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head)
    for s in range(0, len(prompts), batch_size):
        batch = tokenize(model, list(prompts[s : s + batch_size]), padding_side="left")
        reg = HookRegistry(model)
        for L in range(model.cfg.n_layers):
            reg.probe(f"z{L}", f"attn.z.{L}", positions="last", reduce="last")
        with torch.no_grad():
            reg.run(batch, need_logits=False)
        total = total + torch.stack([recorded(reg, f"z{L}") for L in range(model.cfg.n_layers)], 1).sum(0).cpu()
    return total / len(prompts)


class _HeadsAt:
    """Edit at ``attn.z.L``: rows' chosen head (``heads[r]``) takes ``values[h]`` (the registry
    applies it at the last position only)."""

    def __init__(self, values: Tensor, heads: Tensor) -> None:
        self.values, self.heads = values, heads  # [H, d_head], [rows]

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        onehot = torch.nn.functional.one_hot(self.heads, acts.shape[2]).bool().to(acts.device)[:, None, :, None]
        return torch.where(onehot, self.values[None, None].to(acts.dtype), acts)


def causal_indirect_effects(
    model, shuffled: Sequence[str], answers: Sequence[int], z_mean: Tensor, *, tokens_per_pass: int = 2048
) -> Float[Tensor, "layer head"]:
    """CIE of every head: mean over the shuffled prompts of ``P(answer | z_{L,h} ← z̄_{L,h} at the last
    token) − P(answer)``."""
    check_int("tokens_per_pass", tokens_per_pass, min=1)
    if len(shuffled) != len(answers) or not shuffled:
        raise ValueError(f"need one answer per prompt, got {len(shuffled)} prompts and {len(answers)} answers")
    batch = tokenize(model, list(shuffled), padding_side="left")
    ans = torch.tensor(list(answers))
    n, T = batch.tokens.shape
    H, n_layers = model.cfg.n_heads, model.cfg.n_layers
    base = _last_logits(model, HookRegistry(model), batch).float().softmax(-1)
    p0 = base[torch.arange(n), ans.to(base.device)].cpu()
    cie = torch.zeros(n_layers, H)
    per_pass = max(1, tokens_per_pass // T)
    for L in range(n_layers):
        rows_total = H * n
        probs = torch.empty(rows_total)
        for start in range(0, rows_total, per_pass):
            rows = torch.arange(start, min(start + per_pass, rows_total))
            head_of, prompt_of = rows // n, rows % n
            reg = HookRegistry(model)
            reg.steer("mean head", f"attn.z.{L}", _HeadsAt(z_mean[L], head_of), positions="last")
            sub = Batch(batch.tokens[prompt_of], batch.attention_mask[prompt_of])
            p = _last_logits(model, reg, sub).float().softmax(-1)
            probs[rows] = p[torch.arange(len(rows)), ans[prompt_of].to(p.device)].cpu()
        cie[L] = (probs.view(H, n) - p0).mean(1)
    return cie


def function_vector(
    model, z_mean: Tensor, cie: Tensor, n_heads: int = 10, *, z_base: Optional[Tensor] = None
) -> tuple[Float[Tensor, " d_model"], list[tuple[int, int]]]:
    """``Σ_{top n_heads by CIE} ō_{L,h}`` (minus ``ō^base`` when ``z_base`` is given), and the heads."""
    check_int("n_heads", n_heads, min=1, max=cie.numel())
    order = torch.argsort(cie.flatten(), descending=True)[:n_heads].tolist()
    heads = [(i // cie.shape[1], i % cie.shape[1]) for i in order]
    fv = torch.zeros(model.cfg.d_model)
    for L, h in heads:
        z = z_mean[L, h] - (z_base[L, h] if z_base is not None else 0.0)
        fv += (z @ model.blocks[L].attn.W_O[h].detach()).float().cpu()
    return fv, heads


def accuracy(
    model, prompts: Sequence[str], answers: Sequence[int], *, add: Optional[tuple[int, Tensor]] = None
) -> float:
    """Top-1 accuracy of the answer tokens at the last position, optionally with ``add = (layer, v)``
    added to ``resid_post.layer`` at the last token."""
    batch = tokenize(model, list(prompts), padding_side="left")
    reg = HookRegistry(model)
    if add is not None:
        layer, v = add
        reg.steer("fv", f"resid_post.{check_layer(model, layer)}", AddVector(v), positions="last")
    pred = _last_logits(model, reg, batch).argmax(-1).cpu()
    return float((pred == torch.tensor(list(answers))).float().mean())


@dataclass(frozen=True)
class FunctionVectorResult:
    """Accuracies on the held-out words, the CIE map, the heads and both function vectors."""

    task: str
    zero_shot: float
    in_context: float
    fv_by_layer: dict[int, float]
    centred_by_layer: dict[int, float]
    cie: Float[Tensor, "layer head"]
    heads: tuple[tuple[int, int], ...]
    fv: Float[Tensor, " d_model"]
    fv_centred: Float[Tensor, " d_model"]
    k: int

    def best(self, centred: bool = False) -> tuple[int, float]:
        by = self.centred_by_layer if centred else self.fv_by_layer
        L = max(by, key=lambda x: (by[x], -x))
        return L, by[L]


def run_function_vectors(
    model,
    task: str = "antonym",
    *,
    k: int = 5,
    n_prompts: int = 16,
    n_test: int = 25,
    n_heads: int = 10,
    layers: Optional[Sequence[int]] = None,
    baseline_tasks: Optional[Sequence[str]] = None,
    seed: int = 0,
) -> FunctionVectorResult:
    """The whole method on one task: mean head outputs and CIE on ``n_prompts`` k-shot prompts of
    training words, the FV of the top ``n_heads`` heads (and its mean-centred variant against the
    other ``baseline_tasks``, default every other task), and accuracies on ``n_test`` held-out words."""
    check_int("n_prompts", n_prompts, min=1)
    check_int("k", k, min=2)
    t = icl_task(model, task, n_test=n_test, seed=seed)
    rng = random.Random(seed)
    queries = [rng.choice(t.train) for _ in range(n_prompts)]
    clean = icl_prompts(t, queries, k, seed=seed)
    shuffled = icl_prompts(t, queries, k, seed=seed, shuffled=True)
    z_mean = mean_head_outputs(model, clean)
    cie = causal_indirect_effects(model, shuffled, [answer_token(model, a) for _, a in queries], z_mean)
    base_names = [b for b in (baseline_tasks if baseline_tasks is not None else FV_TASKS) if b != task]
    base_prompts = []
    for b in base_names:
        bt = icl_task(model, b, n_test=min(n_test, 5), seed=seed)
        bq = [rng.choice(bt.train) for _ in range(n_prompts)]
        base_prompts += icl_prompts(bt, bq, k, seed=seed)
    z_base = mean_head_outputs(model, [*clean, *base_prompts]) if base_prompts else None
    fv, heads = function_vector(model, z_mean, cie, n_heads)
    fv_c, _ = function_vector(model, z_mean, cie, n_heads, z_base=z_base) if z_base is not None else (fv, heads)
    answers = [answer_token(model, a) for _, a in t.test]
    zero = [f"{x}:" for x, _ in t.test]
    layers = list(range(model.cfg.n_layers)) if layers is None else [check_layer(model, L) for L in layers]
    by = {L: accuracy(model, zero, answers, add=(L, fv)) for L in layers}
    by_c = {L: accuracy(model, zero, answers, add=(L, fv_c)) for L in layers}
    return FunctionVectorResult(
        task=task,
        zero_shot=accuracy(model, zero, answers),
        in_context=accuracy(model, icl_prompts(t, t.test, k, seed=seed + 1), answers),
        fv_by_layer=by,
        centred_by_layer=by_c,
        cie=cie,
        heads=tuple(heads),
        fv=fv,
        fv_centred=fv_c,
        k=k,
    )


__all__ = [
    "FV_TASKS",
    "FunctionVectorResult",
    "ICLTask",
    "accuracy",
    "answer_token",
    "causal_indirect_effects",
    "function_vector",
    "icl_prompts",
    "icl_task",
    "mean_head_outputs",
    "run_function_vectors",
]
