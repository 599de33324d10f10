"""Installing as users do: build the wheel, install it (not editable) into a fresh venv, and use it from
another directory. The venv reuses this environment's installed dependencies (torch, TransformerLens,
the embedded model package) through a ``.pth`` file, so nothing is downloaded."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{args} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(tmp)])
    (wheel,) = tmp.glob("workbench-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "reuse_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return venv, elsewhere


def test_wheel_ships_saes_and_data_and_runs_from_elsewhere(installed):
    venv, elsewhere = installed
    code = """
import workbench, pathlib
assert "site-packages" in workbench.__file__, workbench.__file__
from workbench.sae.loading import load_sae
from workbench.concepts.data import load_concept
sae = load_sae("smollm2-resid_post-15-topk4096")
data = load_concept("sentiment")
print(pathlib.Path(workbench.__file__).parent, sae.cfg.d_sae, len(data.train))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WORKBENCH_SAES")}
    r = _run([str(venv / "bin" / "python"), "-c", code], cwd=elsewhere, env=env)
    assert "4096" in r.stdout


@pytest.mark.embedded
def test_console_script_info_runs(installed):
    venv, elsewhere = installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = _run([str(venv / "bin" / "workbench"), "info", "--no-sites"], cwd=elsewhere, env=env)
    assert "n_layers" in r.stdout and "30" in r.stdout
