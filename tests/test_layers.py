"""The package has two layers, and imports only go downward.

* the library, ``workbench.*`` except the three packages below: computes and returns data;
* ``workbench.plots``: figure functions (plotly);
* ``workbench.experiments``: runners that write files and print (tour, bake-off, SAE replication and
  training, benchmarks);
* ``workbench.cli``: the typer command line.

Allowed: library → library; plots → library; experiments → library, plots; cli → anything.
The library never imports plotly, rich, typer or kaleido, not even inside a function.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "workbench"
UPPER = ("plots", "experiments", "cli")
ALLOWED = {"library": {"library"}, "plots": {"library", "plots"}, "experiments": {"library", "plots", "experiments"}}
ALLOWED["cli"] = {"library", "plots", "experiments", "cli"}
FORBIDDEN_IN_LIBRARY = ("plotly", "rich", "typer", "kaleido")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        if "saes" in path.relative_to(ROOT).parts:
            continue
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in UPPER else "library"


def imports_of(module: str, path: Path) -> list[str]:
    """Every module ``module`` imports, anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            found += [f"{target}.{a.name}" for a in node.names]  # `from pkg import submodule`
    return found


MODULES = _modules()


def test_layout_has_the_layers():
    layers = {layer_of(m) for m in MODULES}
    assert layers == {"library", "plots", "experiments", "cli"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_downward(module):
    mine = layer_of(module)
    bad = []
    for target in imports_of(module, MODULES[module]):
        top = target.split(".")[0]
        if mine == "library" and top in FORBIDDEN_IN_LIBRARY:
            bad.append(f"{target} (the library never imports {top})")
        if top == "workbench" and target in MODULES and layer_of(target) not in ALLOWED[mine]:
            bad.append(f"{target} (layer {layer_of(target)})")
    assert not bad, f"{module} (layer {mine}) imports upward: {bad}"


# TransformerLens itself imports rich at load (transformer_lens.utilities.exploratory_utils), so rich
# cannot be blocked at run time; that workbench's library never imports it is checked statically above.
BLOCKED_AT_RUNTIME = ("plotly", "typer", "kaleido")


def test_library_imports_with_plotting_and_cli_packages_blocked():
    """Import every library module in a fresh interpreter where plotly, typer and kaleido cannot load."""
    library = sorted(m for m in MODULES if layer_of(m) == "library")
    code = f"""
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED_AT_RUNTIME!r}:
            raise ImportError(f"blocked: {{name}}")
        return None
sys.meta_path.insert(0, Block())
for m in {library!r}:
    importlib.import_module(m)
loaded = sorted({{n.split(".")[0] for n in sys.modules}} & set({BLOCKED_AT_RUNTIME!r}))
assert not loaded, loaded
print("ok", len({library!r}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT.parent)
    assert r.returncode == 0, r.stderr[-3000:]


def test_no_library_module_is_huge_without_a_reason():
    """Library modules stay under ~400 lines unless their docstring says why they are longer."""
    for module, path in MODULES.items():
        if layer_of(module) != "library":
            continue
        n = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert n <= 450 or "longer than" in doc.lower(), f"{module} has {n} lines and no stated reason"
