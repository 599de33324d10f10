"""The circuit runner (experiments layer) on a tiny model with a task of token ids, and the
``workbench circuit`` command: wired into the CLI, options validated before any model loads, and
the runner called with the parsed config."""

import json

import pytest
from architectures import family_model
from typer.testing import CliRunner

from workbench.experiments.circuits import CircuitConfig, run_circuit
from workbench.patching.tasks import random_task


def test_run_circuit_writes_figures_and_a_summary(tmp_path):
    model = family_model("llama", n_layers=2)
    task = random_task(model.cfg.d_vocab, n=3, seq_len=6, seed=0)
    # the tiny model fails random answers; check_task keeps the prompts it gets right, so make them its own
    logits = model(task.clean)[:, -1]
    corr = model(task.corrupted)[:, -1]
    task = type(task)(task.name, task.clean, task.corrupted, logits.argmax(-1), corr.argmax(-1))
    keep = (task.correct != task.wrong).nonzero().flatten().tolist()
    task = task.subset(keep)
    cfg = CircuitConfig(
        induction_prompts=2, induction_half_len=8, k_points=3, random_seeds=1, graph_edges=5, receivers=1
    )
    logs = []
    summary = run_circuit(
        model,
        cfg,
        task=task,
        figures=str(tmp_path / "f"),
        results=str(tmp_path / "r"),
        formats=("html",),
        log=logs.append,
    )
    doc = json.loads((tmp_path / "r" / f"circuit_{task.name}.json").read_text())
    assert doc["kind"] == "circuit_report" and doc["schema_version"] == 1
    assert set(doc) >= {"dla", "heads", "path_patching", "edges", "figures"}
    assert doc["dla"]["sum_error"] < 1e-4
    curves = doc["edges"]["curves"]
    assert set(curves) == {"eap", "eap-ig", "eap-relp"}
    for v in curves.values():
        assert v[0] == pytest.approx(0.0, abs=1e-4) and v[-1] == pytest.approx(1.0, abs=1e-4)
    names = {p.split("/")[-1] for p in summary["figures"]}
    assert {f"circuit_{task.name}_dla.html", "circuit_head_scores.html", f"circuit_{task.name}_graph.html"} <= names
    assert all((tmp_path / "f" / n).exists() for n in names)
    assert any("DLA" in line for line in logs)


def test_config_is_validated():
    with pytest.raises(ValueError, match="steps"):
        CircuitConfig(steps=("dla", "acdc"))
    with pytest.raises(TypeError):
        CircuitConfig(n=True)
    with pytest.raises(ValueError):
        CircuitConfig(ig_steps=0)


def test_cli_is_wired_and_validates_before_loading(monkeypatch):
    from workbench.cli import circuit as circuit_cli
    from workbench.cli.main import app, bench_app

    assert set(circuit_cli.commands) == {"circuit"}
    assert "circuit" in CliRunner().invoke(app, ["--help"]).output
    assert "circuit" in CliRunner().invoke(bench_app, ["--help"]).output

    import workbench.models

    def no_model(*a, **k):
        raise AssertionError("the model must not load for a bad option")

    monkeypatch.setattr(workbench.models, "load_model", no_model)
    for args, text in ((["--task", "nope"], "ioi"), (["--steps", "dla,magic"], "magic")):
        r = CliRunner().invoke(app, ["circuit", *args])
        assert r.exit_code != 0 and text in r.output
    r = CliRunner().invoke(app, ["circuit", "--ig-steps", "0"])
    assert r.exit_code != 0

    seen = {}
    monkeypatch.setattr(workbench.models, "load_model", lambda *a, **k: "MODEL")
    import workbench.experiments.circuits as runner

    monkeypatch.setattr(runner, "run_circuit", lambda model, cfg, **kw: seen.update(model=model, cfg=cfg, **kw))
    r = CliRunner().invoke(app, ["circuit", "--task", "capital", "--n", "5", "--steps", "dla,path", "--ig-steps", "7"])
    assert r.exit_code == 0, r.output
    assert seen["model"] == "MODEL" and seen["cfg"] == CircuitConfig(
        task="capital", n=5, steps=("dla", "path"), ig_steps=7
    )
