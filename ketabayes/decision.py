"""Decision quantities: probabilities of benefit, practically no effect and harm.

The thresholds are explicit arguments (STYLE.md, convention 5): a minimal
clinically important difference (MCID), the direction of benefit, and an
optional separate harm threshold. Probabilities are computed from a
:class:`~ketabayes.marginals.Marginal`, exactly when the marginal is
exact. (ArviZ's ``ci_in_rope`` answers a different question: the share of a
credible interval inside a region.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ketabayes.errors import KetabayesError
from ketabayes.marginals import Marginal

__all__ = ["Thresholds", "decision_probabilities", "benefit_curve", "verdict", "VerdictRule", "VERDICTS",
           "RATIO_MEASURES"]

#: measures analysed on the log scale, whose thresholds are given as ratios
RATIO_MEASURES = frozenset({"OR", "RR", "HR", "PETO_OR"})


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds for one outcome.

    Parameters
    ----------
    mcid : float
        Minimal clinically important difference, > 0, on the reporting scale:
        points of the outcome scale for differences (MD, SMD, RD, generic), a
        ratio for OR/RR (``1.25`` means effects beyond 0.8 or 1.25; ``0.8`` is
        read the same way).
    benefit : {"lower", "higher"}
        Direction of benefit: ``"lower"`` for pain scores or adverse events.
    harm : float, optional
        Harm threshold on the same scale, if different from the MCID.
    ratio : bool
        Whether thresholds are ratios and the analysis is on the log scale
        (OR, RR and HR: :data:`RATIO_MEASURES`).

    Examples
    --------
    >>> from ketabayes.decision import Thresholds
    >>> Thresholds(10, "lower").cuts()
    (-10.0, 10.0)
    >>> [round(c, 4) for c in Thresholds(1.25, "lower", ratio=True).cuts()]
    [-0.2231, 0.2231]
    """

    mcid: float
    benefit: str = "lower"
    harm: float | None = None
    ratio: bool = False

    def __post_init__(self):
        for name in ("mcid", "harm"):
            val = getattr(self, name)
            if val is None and name == "harm":
                continue
            if not (isinstance(val, (int, float, np.floating, np.integer)) and math.isfinite(val) and val > 0):
                raise KetabayesError(f"{name} must be a positive number, got {val!r}")
            if self.ratio and val == 1:
                raise KetabayesError(f"{name} is a ratio for OR/RR and must differ from 1, got {val!r}")
        if self.benefit not in ("lower", "higher"):
            raise KetabayesError(f"benefit must be 'lower' or 'higher', got {self.benefit!r}")

    @classmethod
    def for_measure(cls, mcid, measure: str | None, benefit="lower", harm=None) -> Thresholds:
        return cls(mcid=mcid, benefit=benefit, harm=harm, ratio=(measure or "").upper() in RATIO_MEASURES)

    @classmethod
    def resolve(cls, stored: Thresholds | None, mcid=None, benefit=None, harm=None, measure: str | None = None,
                *, required: bool = True) -> Thresholds | None:
        """Thresholds stored with a result, overridden by explicit arguments.

        With ``mcid=None`` the stored thresholds are used (with ``benefit``/``harm``
        replaced if given); otherwise new thresholds are built for ``measure``.
        Raises :class:`~ketabayes.errors.KetabayesError` if no MCID is known and
        ``required`` is true, else returns ``None``.
        """
        if mcid is None:
            if stored is None:
                if required:
                    raise KetabayesError("give an MCID (mcid=...): it was not set when the model was fitted")
                return None
            if benefit is None and harm is None:
                return stored
            return cls(stored.mcid, benefit or stored.benefit, harm if harm is not None else stored.harm,
                       stored.ratio)
        return cls.for_measure(mcid, measure, benefit or (stored.benefit if stored else "lower"), harm)

    def _delta(self, value: float) -> float:
        return abs(math.log(value)) if self.ratio else float(value)

    @property
    def delta_benefit(self) -> float:
        """MCID on the analysis scale (log scale for ratios), > 0."""
        return self._delta(self.mcid)

    @property
    def delta_harm(self) -> float:
        return self._delta(self.harm if self.harm is not None else self.mcid)

    def cuts(self) -> tuple[float, float]:
        """``(low, high)`` analysis-scale cut points between the three regions."""
        if self.benefit == "lower":
            return (-self.delta_benefit, self.delta_harm)
        return (-self.delta_harm, self.delta_benefit)

    def describe(self, measure: str | None = None) -> str:
        lo, hi = self.cuts()
        if self.ratio:
            lo_s, hi_s, zero = f"{math.exp(lo):.4g}", f"{math.exp(hi):.4g}", "1"
            m = measure or "ratio"
        else:
            lo_s, hi_s, zero = f"{lo:.4g}", f"{hi:.4g}", "0"
            m = measure or "effect"
        if self.benefit == "lower":
            return (f"benefit: {m} < {lo_s}; practically no effect: {lo_s} to {hi_s}; harm: {m} > {hi_s}; "
                    f"any benefit: {m} < {zero} (lower is better)")
        return (f"benefit: {m} > {hi_s}; practically no effect: {lo_s} to {hi_s}; harm: {m} < {lo_s}; "
                f"any benefit: {m} > {zero} (higher is better)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Thresholds:
        return cls(**d)


def decision_probabilities(marginal: Marginal, thresholds: Thresholds) -> dict[str, float]:
    """P(benefit beyond the MCID), P(practically no effect), P(harm), P(any benefit).

    Parameters
    ----------
    marginal : Marginal
        Posterior (or predictive) distribution on the analysis scale.
    thresholds : Thresholds

    Returns
    -------
    dict
        ``p_benefit``, ``p_trivial``, ``p_harm``, ``p_any_benefit``; the first three sum to 1.
    """
    lo, hi = thresholds.cuts()
    c_lo, c_hi, c_0 = (float(v) for v in marginal.cdf(np.array([lo, hi, 0.0])))
    if thresholds.benefit == "lower":
        # strictly below 0: an atom at exactly 0 (the no-effect model of an average) is no benefit at all
        p_benefit, p_harm, p_any = c_lo, 1.0 - c_hi, float(np.asarray(marginal.prob_below(0.0)))
    else:
        p_benefit, p_harm, p_any = 1.0 - c_hi, c_lo, 1.0 - c_0
    return {"p_benefit": p_benefit, "p_trivial": c_hi - c_lo, "p_harm": p_harm, "p_any_benefit": p_any}


def benefit_curve(marginal: Marginal, thresholds, benefit: str = "lower", ratio: bool = False) -> pd.DataFrame:
    """Probability of a benefit at least as large as each threshold.

    Parameters
    ----------
    marginal : Marginal
    thresholds : array_like
        Non-negative benefit sizes on the reporting scale (ratios > 0 if ``ratio``;
        a ratio r means a benefit beyond r or 1/r, whichever is the benefit side).
    benefit : {"lower", "higher"}
    ratio : bool

    Returns
    -------
    pandas.DataFrame
        Columns ``threshold`` and ``p_benefit``.
    """
    t = np.asarray(thresholds, dtype=float)
    d = np.abs(np.log(t)) if ratio else t
    if benefit == "lower":
        p = marginal.cdf(-d)
    else:
        p = 1.0 - marginal.cdf(d)
    return pd.DataFrame({"threshold": t, "p_benefit": np.asarray(p, dtype=float)})


#: conclusion categories
VERDICTS = ("probable benefit", "practically no effect", "uncertain", "probable harm")


@dataclass(frozen=True)
class VerdictRule:
    """Probability cut-offs that turn decision probabilities into a conclusion.

    In order: ``P(benefit) >= benefit`` -> ``"probable benefit"``;
    ``P(harm) >= harm`` -> ``"probable harm"``; ``P(practically no effect) >= trivial``
    -> ``"practically no effect"``; otherwise ``"uncertain"``. Every cut-off must
    exceed 0.5, so at most one of the first three can hold (the three
    probabilities sum to one).

    Examples
    --------
    >>> from ketabayes.decision import VerdictRule
    >>> rule = VerdictRule()
    >>> rule(0.85, 0.15, 0.0), rule(0.5, 0.45, 0.05), rule(0.02, 0.9, 0.08)
    ('probable benefit', 'uncertain', 'practically no effect')
    """

    benefit: float = 0.80
    harm: float = 0.80
    trivial: float = 0.80

    def __post_init__(self):
        for name in ("benefit", "harm", "trivial"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating)) and 0.5 < v <= 1.0):
                raise KetabayesError(f"verdict cut-off {name!r} must be in (0.5, 1], got {v!r}")

    def __call__(self, p_benefit: float, p_trivial: float, p_harm: float) -> str:
        if not all(np.isfinite([p_benefit, p_trivial, p_harm])):
            return ""
        if p_benefit >= self.benefit:
            return "probable benefit"
        if p_harm >= self.harm:
            return "probable harm"
        if p_trivial >= self.trivial:
            return "practically no effect"
        return "uncertain"

    def describe(self) -> str:
        return (f"probable benefit if P(benefit) >= {self.benefit:g}; probable harm if P(harm) >= {self.harm:g}; "
                f"practically no effect if P(trivial) >= {self.trivial:g}; otherwise uncertain")


def verdict(p_benefit, p_trivial, p_harm, rule: VerdictRule | None = None):
    """Verdict(s) of decision probabilities (scalars or arrays) under ``rule``."""
    rule = rule or VerdictRule()
    b, t, h = np.broadcast_arrays(np.asarray(p_benefit, float), np.asarray(p_trivial, float),
                                  np.asarray(p_harm, float))
    out = np.array([rule(*x) for x in zip(b.ravel(), t.ravel(), h.ravel())], dtype=object)
    return out.reshape(b.shape) if b.ndim else str(out[0])
