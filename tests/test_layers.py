"""Layers point down: no module imports a higher stage of the pipeline.

Ranks (ARCHITECTURE.md): the foundation modules at the package root (errors, dims, _compat,
provenance, marginals, decision) < data < model < inference < result < reporting < sensitivity <
the command line and demo. The one sanctioned way up is a model's ``fit()``: the model drives the
pipeline, so inside a function of ``model/`` it may import the engines (``inference``) and its result
class (``result``) at call time. Nothing imports a higher layer at module level, and nothing but a
model reaches up at all (so ``result/`` never imports ``model/``, and loading a file never builds one).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import ketabayes

ROOT = pathlib.Path(ketabayes.__file__).parent
FOUNDATION = {"__init__", "errors", "dims", "_compat", "provenance", "marginals", "decision"}
RANK = {**dict.fromkeys(FOUNDATION, 0), "data": 1, "model": 2, "inference": 3, "result": 4, "reporting": 5,
        "sensitivity": 6, "cli": 7, "cli_designs": 7, "demo": 7, "demo_benefit_harm": 7}


def _imports(tree: ast.Module):
    """(module name, line, at module level?) of every ``ketabayes`` import in a parsed file."""
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "ketabayes" and len(parts) > 1:
                yield parts[1], node.lineno, id(node) in top


def _violations(files, root: pathlib.Path = ROOT) -> list[str]:
    out = []
    for f in files:
        own = f.relative_to(root).with_suffix("").parts[0]
        if own not in RANK:
            out.append(f"{f.relative_to(root)}: not placed in a layer (add it to RANK and ARCHITECTURE.md)")
            continue
        for layer, line, top in _imports(ast.parse(f.read_text(encoding="utf-8"))):
            if layer not in RANK:
                out.append(f"{f.relative_to(root)}:{line} imports ketabayes.{layer}, which is in no layer")
            elif RANK[layer] > RANK[own] and (top or own != "model" or layer not in ("inference", "result")):
                out.append(f"{f.relative_to(root)}:{line} ({own}) imports ketabayes.{layer}"
                           f"{' at module level' if top else ''}")
    return out


def test_no_module_imports_a_higher_layer():
    assert _violations(sorted(ROOT.rglob("*.py"))) == []


def test_the_check_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "ketabayes"
    (pkg / "inference").mkdir(parents=True)
    (pkg / "model").mkdir()
    (pkg / "inference" / "bad.py").write_text("from ketabayes.result.base import ResultBase\n")
    (pkg / "model" / "top.py").write_text("from ketabayes.result.base import ResultBase\n")
    (pkg / "model" / "ok.py").write_text("def fit():\n    from ketabayes.result.base import ResultBase\n")
    (pkg / "model" / "report.py").write_text("def fit():\n    from ketabayes.reporting import plots\n")
    found = _violations(sorted(pkg.rglob("*.py")), root=pkg)
    assert len(found) == 3, found
    assert any("bad.py:1 (inference) imports ketabayes.result" in v for v in found)
    assert any("top.py:1 (model) imports ketabayes.result at module level" in v for v in found)
    assert any("report.py:2 (model) imports ketabayes.reporting" in v for v in found)


@pytest.mark.parametrize("module", sorted(FOUNDATION - {"__init__"}))
def test_foundation_modules_import_only_the_foundation(module):
    layers = {layer for layer, _, _ in _imports(ast.parse((ROOT / f"{module}.py").read_text(encoding="utf-8")))}
    assert layers <= FOUNDATION, layers
