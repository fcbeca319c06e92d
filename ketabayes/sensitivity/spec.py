"""Grid specification: factors, their levels, the :class:`Variant` and its seed.

Plain data and helpers shared by every other module of the package (no fitting).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ketabayes.errors import KetabayesError
from ketabayes.model.priors import Prior

__all__ = ["FACTORS", "DATA_FACTORS", "FLOAT_FACTORS", "Variant", "variant_seed"]

#: factor columns of the table, in order (the :data:`FLOAT_FACTORS` are float columns, the others text)
FACTORS = ("prior_mu", "prior_tau", "model", "likelihood", "bias", "data", "r", "multiarm", "conversions",
           "rho_time", "rho_between", "subset", "method", "mcid", "power_scaling")

#: factors that build the variant's data (the effect-size frame) rather than choose its analysis
DATA_FACTORS = ("data", "r", "multiarm", "conversions")

#: factors whose levels are numbers (float columns; NaN where the factor is not part of the grid)
FLOAT_FACTORS = ("r", "rho_time", "rho_between", "mcid")

#: factors that define a fit (the MCID and power-scaling never need a refit)
FIT_FACTORS = ("prior_mu", "prior_tau", "model", "likelihood", "bias", "data", "r", "multiarm", "conversions",
               "rho_time", "rho_between", "subset", "method")


def variant_seed(base_seed: int, name: str) -> int:
    """Deterministic seed of a variant from the base seed and the variant's name.

    ``numpy.random.SeedSequence(base_seed, spawn_key=<128 bits of sha256(name)>)``: independent
    of the order in which variants are run and of the executor.

    Examples
    --------
    >>> from ketabayes.sensitivity import variant_seed
    >>> variant_seed(1, "model=random") == variant_seed(1, "model=random") != variant_seed(2, "model=random")
    True
    """
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    key = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return int(np.random.SeedSequence(int(base_seed), spawn_key=key).generate_state(1, dtype=np.uint32)[0])


# ---------------------------------------------------------------------------
# analysis factories
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One variant of the analysis (all factor levels except the MCID).

    Attributes
    ----------
    name : str
        ``"factor=level | ..."``: unique within a grid, the key of checkpoints and seeds.
    levels : dict
        Factor -> level (a label; a float for :data:`FLOAT_FACTORS`).
    prior_mu, prior_tau : Prior
    model, likelihood, subset, method : str
    frame : tuple of str
        Key of the variant's data: the levels of ``data``, ``r``, ``multiarm``, ``conversions``.
    rho_time, rho_between : float or None
        Assumed correlations across time windows (``None``: not part of the grid).
    bias : BiasAdjustment or None
        The risk-of-bias adjustment (``None``: unadjusted).
    """

    name: str
    levels: dict = field(hash=False, compare=False)
    prior_mu: Prior | None = None
    prior_tau: Prior | None = None
    model: str = "random"
    likelihood: str = "normal"
    subset: str = "all"
    method: str = "exact"
    frame: tuple = ()
    rho_time: float | None = None
    rho_between: float | None = None
    bias: Any = None

    @property
    def fixed(self) -> bool:
        return self.model == "fixed"




def _label(value) -> str:
    if isinstance(value, Prior):
        lab = getattr(value, "label", "")
        return lab or str(value)
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return str(value)


def _levels(value, default) -> dict[str, Any]:
    """Normalise a factor specification to an ordered ``{label: value}``."""
    if value is None:
        value = default
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, (str, Prior)) or callable(value) or not isinstance(value, Sequence):
        value = [value]
    out = {}
    for v in value:
        lab = _label(v)
        if lab in out:
            raise KetabayesError(f"two levels are both labelled {lab!r}; give them as a dict {{label: value}}")
        out[lab] = v
    return out


def _frame_digest(df: pd.DataFrame) -> str:
    """SHA-256 of a data frame's column names, dtypes and every value (row order included)."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode("utf-8"))
    try:
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    except TypeError:  # unhashable cells (lists, dicts): fall back to the text form
        h.update(df.to_csv(index=False, float_format="%.17g").encode("utf-8"))
    return "sha256:" + h.hexdigest()


def _describe_mask(mask: np.ndarray, studies: np.ndarray) -> dict:
    m = np.asarray(mask, dtype=bool)
    if (~m).sum() < m.sum():
        return {"n": int(m.sum()), "left_out": studies[~m].tolist()}
    return {"n": int(m.sum()), "kept": studies[m].tolist()}


def _mask_digest(mask: np.ndarray) -> str:
    m = np.asarray(mask, dtype=bool)
    return f"{m.size}:{int(m.sum())}:" + hashlib.sha256(np.packbits(m).tobytes()).hexdigest()[:32]


def _prior_dict(p: Prior | None):
    return None if p is None else {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
                                   for k, v in p.to_dict().items()}


def _level_id(v) -> str:
    if callable(v):
        return f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}"
    return str(v)


