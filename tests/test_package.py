"""Packaging: the version gate, the public API and the no-mutation/no-traceback contracts."""

from __future__ import annotations

import importlib.metadata

import pytest

import ketabayes
from ketabayes import _compat


def test_old_pymc_gives_a_clear_import_error(monkeypatch):
    real = importlib.metadata.version

    def fake(pkg):
        return "5.28.5" if pkg == "pymc" else real(pkg)

    monkeypatch.setattr(_compat, "version", fake)
    with pytest.raises(ImportError, match=r"needs pymc>=6\.4 but found pymc 5\.28\.5.*Python >= 3\.12"):
        _compat.check_versions()


def test_old_arviz_gives_a_clear_import_error(monkeypatch):
    real = importlib.metadata.version
    monkeypatch.setattr(_compat, "version", lambda pkg: "0.23.4" if pkg == "arviz" else real(pkg))
    with pytest.raises(ImportError, match=r"needs arviz>=1\.3"):
        _compat.check_versions()


def test_every_public_name_resolves():
    for name in ketabayes.__all__:
        assert getattr(ketabayes, name) is not None, name
    with pytest.raises(AttributeError):
        ketabayes.not_a_name  # noqa: B018


def test_errors_are_value_errors():
    for name in ("KetabayesError", "DataError", "RevManError", "PriorError", "ConvergenceError"):
        assert issubclass(getattr(ketabayes, name), ValueError)
