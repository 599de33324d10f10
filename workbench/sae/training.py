"""Training TopK SAEs on a model's residual stream with SAELens' own trainer: the library pieces.

1. **Activation cache** -- :func:`cache_activations` runs token sequences through the model once
   (registry probes at every requested hook; the forward stops after the deepest one), drops the
   first ``skip_positions`` positions of each sequence (an attention sink such as SmolLM2's first
   position, ~100x the norm of the others, treated like a BOS) and writes float16 shards through
   :func:`workbench.artifacts.save_tensors`. Shards already present are reused, so an interrupted
   or enlarged run resumes.
2. **Training** -- :func:`train_one`: ``sae_lens.TopKTrainingSAE`` trained by ``sae_lens.SAETrainer``
   on :func:`activation_batches` (a fresh seeded permutation every epoch). The SAE computes
   ``f(x) = TopK_k(((x - b_dec) W_enc + b_enc) * ||W_dec||_row)`` and
   ``x̂ = (f(x) / ||W_dec||_row) W_dec + b_dec``; the loss is ``||x - x̂||^2 + aux``, where the AuxK
   term ``||e - W_dec^T topk_aux(dead latents)||^2`` (Gao et al. 2024) makes the ``k_aux = d_in/2``
   strongest *dead* latents (no firing for ``dead_window`` steps) reconstruct the residual
   ``e = x - x̂``. Inputs are scaled by ``s = sqrt(d_in) / mean ||x||`` so that ``E||x||^2 ≈ d_in``
   (``expected_average_only_in``), folded back into the weights at the end; ``b_dec`` starts at the
   scaled mean activation. Adam, linear warm-up, constant LR, linear decay over the last
   ``decay_frac`` of steps.
3. **Saving** -- :func:`save_sae` writes the inference SAE (decoder norms folded, ``TopKSAE``) in
   SAELens' own disk format (``cfg.json`` + ``sae_weights.safetensors``; ``SAE.load_from_disk``
   reads it). SAELens' format is the interchange format of SAEs, so it is written by SAELens, not by
   :mod:`workbench.artifacts`. No pickles: the trainer's checkpointing (``torch.save``) is off.

Everything model-specific (name, device, ``d_model``, layer count) comes from the model passed in.
The recipe that chains corpus, cache, training, evaluation and model cards is
:mod:`workbench.experiments.sae_training`.
"""

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..artifacts import load_tensors, save_tensors
from ..registry import HookRegistry
from ..sites import Site
from ..validation import check_bool, check_choice, check_fields, check_int, check_str

ACTIVATIONS_KIND = "sae_activations"
SAVE_DTYPES = ("float16", "float32")


def hook_name(layer: int) -> str:
    """The residual-stream hook the recipe's SAEs read: ``blocks.{layer}.hook_resid_post``."""
    return f"blocks.{check_int('layer', layer, min=0)}.hook_resid_post"


def check_layers(model, layers: Sequence[int]) -> tuple[int, ...]:
    """``layers`` as a tuple of distinct ints in ``0..n_layers-1`` of ``model``."""
    n = model.cfg.n_layers
    layers = tuple(layers)
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layers must be non-empty and distinct, got {list(layers)}")
    for L in layers:
        if isinstance(L, bool) or not isinstance(L, int) or not 0 <= L < n:
            raise ValueError(
                f"layers must be ints in [0, {n - 1}] ({model.cfg.model_name} has {n}), got {list(layers)}"
            )
    return layers


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one TopK SAE (defaults: the shipped SmolLM2 SAEs)."""

    d_sae: int = 4096  # latents
    k: int = 64  # active latents per token (TopK)
    epochs: float = 1.5  # passes over the cached activations
    batch_size: int = 512  # activations per Adam step
    lr: float = 1e-3  # peak Adam learning rate
    warmup_frac: float = 0.05  # share of steps with linear warm-up
    decay_frac: float = 0.2  # share of final steps with linear decay to lr/10
    aux_coef: float = 1.0  # weight of the AuxK loss that revives dead latents
    dead_window: int = 100  # steps without firing after which a latent counts as dead
    seed: int = 0  # weight init (seed + layer) and batch order (seed + 1000 * layer)
    seq_len: int = 128  # context size of the training sequences (recorded in the SAE's metadata)
    skip_positions: int = 1  # leading positions never trained on (attention sink / BOS)

    def __post_init__(self) -> None:
        check_fields(
            self,
            d_sae={"kind": "int", "min": 1},
            k={"kind": "int", "min": 1, "max": self.d_sae if isinstance(self.d_sae, int) else None},
            epochs={"kind": "float", "min": 0.0, "min_open": True},
            batch_size={"kind": "int", "min": 1},
            lr={"kind": "float", "min": 0.0, "min_open": True},
            warmup_frac={"kind": "float", "min": 0.0, "max": 1.0, "max_open": True},
            decay_frac={"kind": "float", "min": 0.0, "max": 1.0, "max_open": True},
            aux_coef={"kind": "float", "min": 0.0},
            dead_window={"kind": "int", "min": 1},
            seed={"kind": "int", "min": 0},
            seq_len={"kind": "int", "min": 2},
            skip_positions={
                "kind": "int",
                "min": 0,
                "max": self.seq_len - 1 if isinstance(self.seq_len, int) else None,
            },
        )
        if self.warmup_frac + self.decay_frac >= 1:
            raise ValueError(
                f"TrainConfig.warmup_frac + decay_frac must be < 1, got {self.warmup_frac} + {self.decay_frac}"
            )


# ----------------------------------------------------------------------------- activation cache


def _shard_stem(folder: Path, split: str, a: int, b: int) -> Path:
    return folder / f"{split}_{a:06d}-{b:06d}"


def cache_activations(
    model,
    tokens: Int[Tensor, "n_seq T"],
    hooks: Sequence[str],
    folder: Union[str, Path],
    split: str,
    *,
    skip_positions: int = 1,
    batch_size: int = 8,
    shard_seqs: int = 128,
    progress: bool = True,
) -> list[Path]:
    """Run ``tokens`` once through ``model`` (registry probes at ``hooks``; the pass stops after the
    deepest) and write each hook's activations at positions ``>= skip_positions`` as float16
    ``[n_tok, d]`` shards ``{split}_{start:06d}-{end:06d}.safetensors`` (+ ``.json`` sidecar) holding
    sequences ``[start, end)``, keys = hook names. Complete shards already present are kept, so an
    interrupted or enlarged run resumes. Returns the shards' ``.safetensors`` paths."""
    from tqdm.auto import tqdm

    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 2 or tokens.is_floating_point() or tokens.shape[0] == 0:
        raise ValueError(f"tokens must be a non-empty integer tensor [n_seq, T], got {tuple(tokens.shape)}")
    check_str("split", split)
    check_int("skip_positions", skip_positions, min=0, max=tokens.shape[1] - 1)
    check_int("batch_size", batch_size, min=1)
    check_int("shard_seqs", shard_seqs, min=1)
    check_bool("progress", progress)
    hooks = list(hooks)
    if not hooks or len(set(hooks)) != len(hooks):
        raise ValueError(f"hooks must be non-empty and distinct, got {hooks}")
    sites = {h: Site.parse(h, model) for h in hooks}
    folder = Path(folder)
    n_seq = tokens.shape[0]
    ranges = [(a, min(a + shard_seqs, n_seq)) for a in range(0, n_seq, shard_seqs)]
    done = {r for r in ranges if _shard_stem(folder, split, *r).with_suffix(".json").is_file()}
    bar = tqdm(
        total=sum(b - a for a, b in ranges if (a, b) not in done) * tokens.shape[1],
        desc=f"activations[{split}]",
        unit="tok",
        unit_scale=True,
        mininterval=30,
        file=sys.stderr,
        disable=not progress,
    )
    reg = HookRegistry(model)
    for h, site in sites.items():
        reg.probe(h, site)
    paths = []
    with torch.inference_mode():
        for a, b in ranges:
            stem = _shard_stem(folder, split, a, b)
            paths.append(stem.with_suffix(".safetensors"))
            if (a, b) in done:
                continue
            parts: dict[str, list[Tensor]] = {h: [] for h in hooks}
            for i in range(a, b, batch_size):
                toks = tokens[i : min(i + batch_size, b)]
                reg.run(toks)
                for h in hooks:
                    act = cast(Tensor, reg.records[h])[:, skip_positions:]  # unpadded: one [B, T, d] tensor
                    parts[h].append(act.reshape(-1, act.shape[-1]).to("cpu", torch.float16))
                bar.update(toks.numel())
            meta = {"split": split, "start": a, "end": b, "skip_positions": skip_positions, "hooks": hooks}
            save_tensors(stem, {h: torch.cat(v) for h, v in parts.items()}, meta, kind=ACTIVATIONS_KIND, version=1)
    bar.close()
    return paths


def load_activations(paths: Sequence[Union[str, Path]], hook: str) -> Float[Tensor, "n d"]:
    """Concatenate one hook's float16 activations from the shards (in order)."""
    out = []
    for p in paths:
        t, _ = load_tensors(p, kind=ACTIVATIONS_KIND, required_tensors=(hook,))
        out.append(t[hook])
    if not out:
        raise ValueError("no activation shards given")
    return torch.cat(out)


def activation_batches(acts: Tensor, batch_size: int, seed: int = 0) -> Iterator[Float[Tensor, "batch d"]]:
    """Endless float32 batches ``[batch_size, d]``: epoch ``e`` walks a permutation seeded ``seed + e``
    (an incomplete last batch is dropped). Batches stay on ``acts``' device (the trainer moves them)."""
    check_int("batch_size", batch_size, min=1)
    n = acts.shape[0]
    if n < batch_size:
        raise ValueError(f"only {n} activations for batch size {batch_size}")
    epoch = 0
    while True:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).to(acts.device)
        for j in range(0, n - batch_size + 1, batch_size):
            yield acts[perm[j : j + batch_size]].float()
        epoch += 1


# ----------------------------------------------------------------------------- training


def _mean_norm_and_mean(acts: Tensor, chunk: int = 65536) -> tuple[float, Tensor]:
    norm_sum, vec_sum = 0.0, torch.zeros(acts.shape[1], dtype=torch.float64, device=acts.device)
    for i in range(0, acts.shape[0], chunk):
        x = acts[i : i + chunk].double()
        norm_sum += float(x.norm(dim=-1).sum())
        vec_sum += x.sum(0)
    return norm_sum / acts.shape[0], (vec_sum / acts.shape[0]).float()


def train_one(
    acts: Float[Tensor, "n d_model"],
    layer: int,
    cfg: TrainConfig,
    *,
    model,
    dataset_path: str = "",
):
    """Train a ``TopKTrainingSAE`` on ``acts`` (activations of ``blocks.{layer}.hook_resid_post`` of
    ``model``) with ``SAETrainer``, on ``model``'s device; returns ``(training_sae, info)``. The
    SAE's metadata records the model's name, the hook, the context size and the skipped positions."""
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata

    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    check_layers(model, [layer])
    if acts.ndim != 2 or acts.shape[1] != model.cfg.d_model:
        raise ValueError(f"acts must be [n, d_model={model.cfg.d_model}], got {tuple(acts.shape)}")
    device = str(model.cfg.device)
    torch.manual_seed(cfg.seed + layer)
    meta = SAEMetadata(
        model_name=model.cfg.model_name,
        hook_name=hook_name(layer),
        hook_head_index=None,
        context_size=cfg.seq_len,
        prepend_bos=bool(getattr(model.cfg, "default_prepend_bos", False)),
        seqpos_slice=[cfg.skip_positions, None],
        dataset_path=dataset_path,
    )
    sae_cfg = TopKTrainingSAEConfig(
        d_in=model.cfg.d_model,
        d_sae=cfg.d_sae,
        k=cfg.k,
        aux_loss_coefficient=cfg.aux_coef,
        rescale_acts_by_decoder_norm=True,
        normalize_activations="expected_average_only_in",
        apply_b_dec_to_input=True,
        dtype="float32",
        device=device,
        metadata=meta,
    )
    sae = TopKTrainingSAE(sae_cfg)
    total = int(cfg.epochs * acts.shape[0]) // cfg.batch_size * cfg.batch_size
    steps = total // cfg.batch_size
    if steps < 1:
        raise ValueError(f"{acts.shape[0]} activations × {cfg.epochs} epochs make no batch of {cfg.batch_size}")
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
        device=device,
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


def save_sae(training_sae, out: Union[str, Path], dtype: str = "float16", *, overwrite: bool = True) -> Path:
    """Save the inference form (decoder norms folded, ``TopKSAE``) of ``training_sae`` into folder
    ``out`` in SAELens' disk format, weights in ``dtype``. An existing folder is replaced only with
    ``overwrite``."""
    from sae_lens import SAE

    check_choice("dtype", dtype, SAVE_DTYPES)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    with tempfile.TemporaryDirectory() as tmp:
        training_sae.save_inference_model(tmp)
        sae = SAE.load_from_disk(tmp, device=str(training_sae.device))
    sae = sae.to(getattr(torch, dtype))
    if out.exists():
        shutil.rmtree(out)
    sae.save_model(out)
    return out


def sae_dir_name(prefix: str, layer: int, d_sae: int) -> str:
    """``{prefix}-resid_post-{layer}-topk{d_sae}``, the folder name of a recipe SAE."""
    check_str("prefix", prefix)
    return f"{prefix}-resid_post-{check_int('layer', layer, min=0)}-topk{check_int('d_sae', d_sae, min=1)}"


__all__ = [
    "TrainConfig",
    "activation_batches",
    "cache_activations",
    "check_layers",
    "hook_name",
    "load_activations",
    "sae_dir_name",
    "save_sae",
    "train_one",
]
