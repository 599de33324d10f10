"""The tuned-lens corpus: the library generates it and writes nothing; the experiments layer keeps it
on disk (through workbench.artifacts) and reuses it only for the same model and sizes."""

import torch
from architectures import family_model, with_tokenizer

from workbench.experiments.tuned_lens import cached_lens_corpus, corpus_path, default_tuned_lens_path
from workbench.lens import lens_corpus


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_lens_corpus_writes_nothing_and_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    model = with_tokenizer(family_model("llama"))
    a = lens_corpus(model, 3, 8, progress=False)
    assert a.shape == (3, 8) and a.dtype == torch.long
    assert _files(tmp_path) == []
    torch.testing.assert_close(lens_corpus(model, 3, 8, progress=False), a, rtol=0, atol=0)


def test_cached_corpus_is_reused_only_for_the_same_model(tmp_path):
    model = with_tokenizer(family_model("llama"))
    a = cached_lens_corpus(model, 3, 8, cache=tmp_path, progress=False)
    path = corpus_path(model, 3, 8, cache=tmp_path)
    assert path.exists() and path.with_suffix(".json").exists()
    torch.testing.assert_close(cached_lens_corpus(model, 3, 8, cache=tmp_path, progress=False), a, rtol=0, atol=0)
    # another model under the same name: the saved corpus is not trusted, it is regenerated
    other = with_tokenizer(family_model("llama", seed=1))
    b = cached_lens_corpus(other, 3, 8, cache=tmp_path, progress=False)
    torch.testing.assert_close(b, lens_corpus(other, 3, 8, progress=False), rtol=0, atol=0)
    assert default_tuned_lens_path(model, tmp_path).parent == path.parent
