"""What ``workbench bench lens`` relies on, checked without timing: the peak-memory sampler sees an
allocation, the long text has the asked length (corpus or fallback), and the command validates
its options before loading a model."""

import torch
from architectures import family_model, with_tokenizer
from typer.testing import CliRunner

import workbench.sae.corpus as corpus
from workbench.cli.main import bench_app
from workbench.experiments.bench import peak_rss_mb, rss_mb
from workbench.experiments.bench.lens import _PeakSampler, long_text_tokens


def test_the_peak_sampler_sees_a_large_allocation():
    before = rss_mb()
    with _PeakSampler(interval=0.001) as s:
        x = torch.ones(64 * 2**20)  # 256 MB, touched
        x += 1
        del x
    assert s.peak - before > 200
    assert peak_rss_mb() >= s.peak * 0.9


def test_long_text_falls_back_to_repeated_prompts(monkeypatch):
    model = with_tokenizer(family_model("llama"))

    def no_corpus(model, n_rows=None):
        raise OSError("offline")

    monkeypatch.setattr(corpus, "heldout_tokens", no_corpus)
    tokens, source = long_text_tokens(model, 500)
    assert tokens.shape == (1, 500) and source == "repeated benchmark prompts"
    assert int(tokens.max()) < model.cfg.d_vocab


def test_bench_lens_validates_its_options_before_loading():
    r = CliRunner().invoke(bench_app, ["lens", "--tokens", "0"])
    assert r.exit_code != 0 and "--tokens" in r.output
    r = CliRunner().invoke(bench_app, ["patching", "--task", "nope"])
    assert r.exit_code != 0 and "ioi" in r.output
