"""Dependency version checks done at import time, without importing PyMC."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from packaging.version import Version

MIN_VERSIONS = {"pymc": "6.4", "arviz": "1.3"}


def check_versions() -> None:
    """Raise ImportError with a clear message if PyMC or ArviZ are too old."""
    for pkg, minimum in MIN_VERSIONS.items():
        try:
            found = version(pkg)
        except PackageNotFoundError:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"ketabayes needs {pkg}>={minimum}, which is not installed. "
                f"Install it with: python -m pip install '{pkg}>={minimum}'"
            ) from None
        if Version(found) < Version(minimum):
            raise ImportError(
                f"ketabayes needs {pkg}>={minimum} but found {pkg} {found}. "
                f"PyMC 5 / ArviZ 0.x are what `pip install pymc` gives on Python 3.11; "
                f"use Python >= 3.12 and run: python -m pip install -U '{pkg}>={minimum}'"
            )


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    out = {}
    for pkg in ("ketabayes", "pymc", "pytensor", "arviz", "arviz-base", "arviz-stats", "numpy", "scipy",
                "pandas", "xarray"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    import platform

    out["python"] = platform.python_version()
    return tuple(out.items())


def package_versions() -> dict[str, str]:
    """Versions of ketabayes and the libraries that determine its numbers (looked up once per process)."""
    return dict(_versions())


def progress_default() -> bool:
    """Whether progress bars are shown when the caller did not say (``progressbar=None``).

    On in a terminal (standard error is a TTY) and in a Jupyter kernel; off elsewhere (scripts writing
    to files, CI). The environment variable ``KETABAYES_PROGRESS`` (``0`` or ``1``) overrides both;
    the documentation build sets it to 0 so that executed pages stay clean.
    """
    import os
    import sys

    env = os.environ.get("KETABAYES_PROGRESS")
    if env is not None:
        return env.strip() not in ("", "0", "false", "no", "off")
    if "ipykernel" in sys.modules:
        return True
    stream = getattr(sys, "stderr", None)
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def ieee_pytensor() -> None:
    """Compile PyTensor's numba code without fast-math, so that a seed fixes the draws bit for bit.

    PyTensor 3 compiles models with numba and, by default, with LLVM fast-math flags (``reassoc``,
    ``contract``, ...). Under those flags the machine code of one Op depends on what it is compiled
    together with: a graph jitted in one piece (cold cache) and the same graph assembled from Ops
    loaded from numba's file cache (warm cache) round differently, the difference grows along a NUTS
    trajectory, and the same fit with the same seed gave different draws depending on whether an
    earlier process had filled ``~/.pytensor`` (the flaky CI runs of issue #15;
    ``tests/test_determinism.py`` reproduces it with a fresh compile directory). IEEE arithmetic has
    one answer, cached or not. The cost is small (``benchmarks/README.md``).

    Sets ``pytensor.config.numba__fastmath = False`` for the process (the cache keys of PyTensor
    include the flag, so no fast-math code is reused). Called by every ketabayes path that compiles a
    PyMC model (NUTS, nutpie, SMC, log-likelihood and log-prior groups), never by ``import ketabayes``.
    """
    import pytensor

    if pytensor.config.numba__fastmath:
        pytensor.config.numba__fastmath = False
