"""More priors: heavy-tailed and truncated priors for the mean, a point mass, and the
inverse-gamma and reference priors for tau offered by bayesmeta.

Priors for the average effect ``mu`` (each optionally truncated to ``[lower, upper]``;
:class:`~ketabayes.model.priors.Normal` takes the same ``lower=`` / ``upper=``):

* :class:`StudentT` -- ``studentt(nu, mu, sigma)``;
* :class:`Cauchy` -- ``cauchy(mu, sigma)``, e.g. ``"cauchy(0, 0.707, lower=0)"``, the
  default of one-sided Bayesian t-tests (Rouder et al. 2009; metaBMA's ``d ~ cauchy``);
* :class:`Point` -- ``point(0)``, a point mass (a null model: ``mu`` fixed).

Priors for ``tau``:

* :class:`InvGamma` -- ``invgamma(shape, scale)`` **on tau** (metaBMA's convention,
  ``prior("invgamma", c(shape, scale), "tau")``; its default for ``tau`` is
  ``invgamma(1, 0.15)``);
* :class:`InvGammaTau2` -- ``invgammatau2(shape, scale)`` **on tau^2** (the classic
  ``1/tau^2 ~ Gamma(shape, rate = scale)`` of BUGS);
* reference priors as defined by bayesmeta (Röver 2020, sec. 3.3 and Table 2):
  :class:`ImproperUniform` ``p(tau) ~ 1`` (``improperuniform()``), :class:`Jeffreys`
  ``p(tau) ~ sqrt(sum (tau / (s_i^2 + tau^2))^2)`` (Tibshirani 1989; Bodnar et al. 2017),
  :class:`DuMouchel` ``p(tau) = s0 / (s0 + tau)^2`` (DuMouchel 1994),
  :class:`UniformShrinkage` ``p(tau) = 2 s0^2 tau / (s0^2 + tau^2)^2`` (Daniels 1999) with
  ``s0^2 = k / sum(1 / s_i^2)``, and :class:`UniformI2` -- uniform on Higgins and
  Thompson's ``I^2 = tau^2 / (tau^2 + s^2)``, ``p(tau) = 2 s^2 tau / (s^2 + tau^2)^2`` with
  the "typical" within-study variance ``s^2 = (k-1) sum w / ((sum w)^2 - sum w^2)``,
  ``w = 1 / s_i^2`` (Higgins & Thompson 2002, eq. 9).

The data-dependent reference priors are written without their data, e.g. ``"dumouchel()"``,
and resolved against the studies' variances by :func:`resolve_prior` (the models and the
exact engine do this), which fills in ``s0`` (or the standard errors for Jeffreys) so that
the prior stored with a result is complete; ``"dumouchel(0.3)"`` gives ``s0`` explicitly.

References
----------
Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R package.
J Stat Softw 93(6):1-51. doi:10.18637/jss.v093.i06
Gronau QF, Heck DW, Berkhout SW, Haaf JM, Wagenmakers EJ (2021). A primer on Bayesian
model-averaged meta-analysis. AMPPS 4(3). doi:10.1177/25152459211031256 (metaBMA)
Rouder JN, Speckman PL, Sun D, Morey RD, Iverson G (2009). Bayesian t tests for accepting
and rejecting the null hypothesis. Psychon Bull Rev 16:225-237. doi:10.3758/PBR.16.2.225
DuMouchel W (1994). Hierarchical Bayes linear models for meta-analysis. Technical Report 27,
National Institute of Statistical Sciences.
Daniels MJ (1999). A prior for the variance in hierarchical models. Can J Stat 27(3):567-578.
doi:10.2307/3316112
Tibshirani R (1989). Noninformative priors for one parameter of many. Biometrika 76(3):604-608.
doi:10.1093/biomet/76.3.604
Bodnar O, Link A, Arendacká B, Possolo A, Elster C (2017). Bayesian estimation in random
effects meta-analysis using a non-informative prior. Stat Med 36(2):378-399. doi:10.1002/sim.7156
Higgins JPT, Thompson SG (2002). Quantifying heterogeneity in a meta-analysis. Stat Med
21(11):1539-1558. doi:10.1002/sim.1186
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy import special

from ketabayes.errors import PriorError
from ketabayes.model.priors import (
    Prior,
    _fmt,
    _location,
    _positive,
    _scale,
    _t_logpdf,
)

__all__ = ["StudentT", "Cauchy", "Point", "InvGamma", "InvGammaTau2", "ImproperUniform", "Jeffreys",
           "DuMouchel", "UniformShrinkage", "UniformI2", "resolve_prior"]


# ---------------------------------------------------------------------------
# truncation (shared by the location priors)
# ---------------------------------------------------------------------------
def _check_bounds(prior) -> None:
    lo, hi = prior.lower, prior.upper
    for name, b in (("lower", lo), ("upper", hi)):
        if b is not None:
            _location(name, b, prior.kind)
    if lo is not None and hi is not None and not lo < hi:
        raise PriorError(f"{prior.kind}: need lower < upper, got lower={lo}, upper={hi}")


class _Truncatable(Prior):
    """A location prior ``f`` with optional truncation to ``[lower, upper]``: ``f / (F(upper) - F(lower))``."""

    def _logpdf0(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _cdf0(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:
        return (-math.inf if self.lower is None else float(self.lower),
                math.inf if self.upper is None else float(self.upper))

    @property
    def _log_mass(self) -> float:
        lo, hi = self.bounds()
        mass = float(self._cdf0(hi)) - float(self._cdf0(lo))
        if not mass > 0:
            raise PriorError(f"{self}: no prior mass between the truncation bounds")
        return math.log(mass)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        lo, hi = self.bounds()
        out = self._logpdf0(x) - self._log_mass
        return np.where((x >= lo) & (x <= hi), out, -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        lo, hi = self.bounds()
        c = (self._cdf0(np.clip(x, lo, hi)) - self._cdf0(lo)) / math.exp(self._log_mass)
        return np.clip(c, 0.0, 1.0)

    def _bounds_str(self) -> str:
        out = ""
        if self.lower is not None:
            out += f", lower={_fmt(self.lower)}"
        if self.upper is not None:
            out += f", upper={_fmt(self.upper)}"
        return out


@dataclass(frozen=True)
class StudentT(_Truncatable):
    """Student-t prior ``t_nu(mu, sigma)`` for the average effect, optionally truncated."""

    kind: ClassVar[str] = "studentt"
    _params: ClassVar[tuple[str, ...]] = ("nu", "mu", "sigma")
    nu: float = 3.0
    mu: float = 0.0
    sigma: float = 1.0
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self):
        _positive("nu", self.nu, self.kind)
        _location("mu", self.mu, self.kind)
        _scale("sigma", self.sigma, self.kind)
        _check_bounds(self)

    def _logpdf0(self, x):
        return _t_logpdf((x - self.mu) / self.sigma, self.nu) - math.log(self.sigma)

    def _cdf0(self, x):
        return special.stdtr(self.nu, (np.asarray(x, dtype=float) - self.mu) / self.sigma)

    def scale_points(self):
        """Location and scale (where the prior's features are), for the exact engine."""
        return self.mu, self.sigma

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        if self.lower is None and self.upper is None:
            return pm.StudentT(name, nu=self.nu, mu=self.mu, sigma=self.sigma, **kwargs)
        return pm.Truncated(name, pm.StudentT.dist(nu=self.nu, mu=self.mu, sigma=self.sigma),
                            lower=self.lower, upper=self.upper, **kwargs)

    def __str__(self):
        return f"studentt({_fmt(self.nu)}, {_fmt(self.mu)}, {_fmt(self.sigma)}{self._bounds_str()})"


@dataclass(frozen=True)
class Cauchy(_Truncatable):
    """Cauchy prior ``Cauchy(mu, sigma)`` for the average effect, optionally truncated."""

    kind: ClassVar[str] = "cauchy"
    _params: ClassVar[tuple[str, ...]] = ("mu", "sigma")
    mu: float = 0.0
    sigma: float = 0.707
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self):
        _location("mu", self.mu, self.kind)
        _scale("sigma", self.sigma, self.kind)
        _check_bounds(self)

    def _logpdf0(self, x):
        z = (x - self.mu) / self.sigma
        return -math.log(math.pi * self.sigma) - np.log1p(z * z)

    def _cdf0(self, x):
        return 0.5 + np.arctan((np.asarray(x, dtype=float) - self.mu) / self.sigma) / math.pi

    def scale_points(self):
        return self.mu, self.sigma

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        if self.lower is None and self.upper is None:
            return pm.Cauchy(name, alpha=self.mu, beta=self.sigma, **kwargs)
        return pm.Truncated(name, pm.Cauchy.dist(alpha=self.mu, beta=self.sigma),
                            lower=self.lower, upper=self.upper, **kwargs)

    def __str__(self):
        return f"cauchy({_fmt(self.mu)}, {_fmt(self.sigma)}{self._bounds_str()})"


@dataclass(frozen=True)
class Point(Prior):
    """A point mass at ``value`` for the average effect (a null model: ``mu`` is fixed)."""

    kind: ClassVar[str] = "point"
    _params: ClassVar[tuple[str, ...]] = ("value",)
    value: float = 0.0

    def __post_init__(self):
        _location("value", self.value, self.kind)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x == self.value, 0.0, -np.inf)

    def cdf(self, x):
        return (np.asarray(x, dtype=float) >= self.value).astype(float)

    def bounds(self) -> tuple[float, float]:
        return (float(self.value), float(self.value))

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.Deterministic(name, pm.math.constant(self.value, dtype="float64"), **kwargs)


# ---------------------------------------------------------------------------
# tau: inverse gamma
# ---------------------------------------------------------------------------
def _invgamma_logpdf(x, a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a * math.log(b) - math.lgamma(a) - (a + 1) * np.log(x) - b / x
    return np.where(x > 0, out, -np.inf)


@dataclass(frozen=True)
class InvGamma(Prior):
    """Inverse-gamma prior **on tau** with ``shape`` and ``scale`` (metaBMA's convention).

    ``p(tau) = scale^shape / Gamma(shape) tau^-(shape+1) exp(-scale / tau)``.
    """

    kind: ClassVar[str] = "invgamma"
    support: ClassVar[str] = "positive"
    _params: ClassVar[tuple[str, ...]] = ("shape", "scale")
    shape: float = 1.0
    scale: float = 0.15

    def __post_init__(self):
        _positive("shape", self.shape, self.kind)
        _scale("scale", self.scale, self.kind)

    def logpdf(self, x):
        return _invgamma_logpdf(np.asarray(x, dtype=float), self.shape, self.scale)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            return np.where(x > 0, special.gammaincc(self.shape, self.scale / np.maximum(x, 1e-300)), 0.0)

    def ppf(self, q):
        with np.errstate(divide="ignore"):
            return self.scale / special.gammainccinv(self.shape, np.asarray(q, dtype=float))

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.InverseGamma(name, alpha=self.shape, beta=self.scale, **kwargs)


@dataclass(frozen=True)
class InvGammaTau2(Prior):
    """Inverse-gamma prior **on tau^2** (``1 / tau^2 ~ Gamma(shape, rate=scale)``); density on tau by
    change of variables, ``p(tau) = 2 tau IG(tau^2; shape, scale)``."""

    kind: ClassVar[str] = "invgammatau2"
    support: ClassVar[str] = "positive"
    _params: ClassVar[tuple[str, ...]] = ("shape", "scale")
    shape: float = 0.001
    scale: float = 0.001

    def __post_init__(self):
        _positive("shape", self.shape, self.kind)
        _scale("scale", self.scale, self.kind)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = math.log(2.0) + np.log(x) + _invgamma_logpdf(x * x, self.shape, self.scale)
        return np.where(x > 0, out, -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", over="ignore"):
            return np.where(x > 0, special.gammaincc(self.shape, self.scale / np.maximum(x * x, 1e-300)), 0.0)

    def ppf(self, q):
        with np.errstate(divide="ignore"):
            return np.sqrt(self.scale / special.gammainccinv(self.shape, np.asarray(q, dtype=float)))

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        tau2 = pm.InverseGamma(f"{name}2", alpha=self.shape, beta=self.scale, **kwargs)
        return pm.Deterministic(name, pm.math.sqrt(tau2), **kwargs)


# ---------------------------------------------------------------------------
# tau: reference priors (bayesmeta)
# ---------------------------------------------------------------------------
def _potential_prior(prior, name, **kwargs):
    """A tau > 0 with the prior's log density added as a potential (improper or data-dependent priors)."""
    import pymc as pm

    tau = pm.HalfFlat(name, **kwargs)
    pm.Potential(f"{name}_prior", prior._logpdf_pt(tau))
    return tau


@dataclass(frozen=True)
class ImproperUniform(Prior):
    """Improper uniform prior ``p(tau) ~ 1`` on ``tau > 0`` (bayesmeta's ``tau.prior="uniform"``).

    The posterior is proper for at least two studies with a flat prior on ``mu`` (Röver 2020,
    sec. 3.3). Marginal likelihoods (Bayes factors) are not defined under it.
    """

    kind: ClassVar[str] = "improperuniform"
    support: ClassVar[str] = "positive"
    citation: ClassVar[str] = "Röver 2020 (doi:10.18637/jss.v093.i06), uniform"

    @property
    def proper(self) -> bool:
        return False

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, 0.0, -np.inf)

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.HalfFlat(name, **kwargs)

    def __str__(self):
        return "improperuniform()"


@dataclass(frozen=True)
class Jeffreys(Prior):
    """Jeffreys prior ``p(tau) ~ sqrt(sum_i (tau / (s_i^2 + tau^2))^2)`` given the standard errors ``s_i``
    (Tibshirani 1989; Bodnar et al. 2017; bayesmeta's ``"Jeffreys"``). Improper.

    ``se`` holds the standard errors (filled in by :func:`resolve_prior`).
    """

    kind: ClassVar[str] = "jeffreys"
    support: ClassVar[str] = "positive"
    citation: ClassVar[str] = "Bodnar et al. 2017 (doi:10.1002/sim.7156)"
    se: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "se", tuple(float(s) for s in self.se))
        for s in self.se:
            _scale("se", s, self.kind)

    @property
    def proper(self) -> bool:
        return False

    @property
    def resolved(self) -> bool:
        return len(self.se) > 0

    def for_data(self, vi):
        return replace(self, se=tuple(np.sqrt(np.asarray(vi, dtype=float)).tolist()))

    def logpdf(self, x):
        if not self.resolved:
            raise PriorError("jeffreys(): the prior depends on the studies' standard errors; resolve it first")
        x = np.asarray(x, dtype=float)
        s2 = np.asarray(self.se) ** 2
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = x[..., None] / (s2 + x[..., None] ** 2)
            out = 0.5 * np.log((r * r).sum(-1))
        return np.where(x >= 0, out, -np.inf)

    def _logpdf_pt(self, tau):
        import pytensor.tensor as pt

        s2 = pt.as_tensor_variable(np.asarray(self.se) ** 2)
        return 0.5 * pt.log(pt.sum((tau / (s2 + tau**2)) ** 2))

    def to_pymc(self, name, **kwargs):
        return _potential_prior(self, name, **kwargs)

    def to_dict(self):
        return {"kind": self.kind, "se": list(self.se)}

    def __str__(self):
        return "jeffreys()" if not self.resolved else f"jeffreys(<{len(self.se)} standard errors>)"


class _ScaleReference(Prior):
    """A proper reference prior with a data-dependent scale ``s0`` (``None`` until resolved)."""

    support: ClassVar[str] = "positive"
    _params: ClassVar[tuple[str, ...]] = ("s0",)

    def __post_init__(self):
        if self.s0 is not None:
            _scale("s0", self.s0, self.kind)

    @property
    def resolved(self) -> bool:
        return self.s0 is not None

    def _need(self):
        if self.s0 is None:
            raise PriorError(f"{self.kind}(): the prior's scale depends on the studies' variances; resolve it "
                             "first (the models do this) or give it, e.g. " + f"'{self.kind}(0.3)'")
        return self.s0

    @staticmethod
    def _s0_for(vi) -> float:
        vi = np.asarray(vi, dtype=float)
        return math.sqrt(vi.size / float(np.sum(1.0 / vi)))

    def for_data(self, vi):
        return self if self.resolved else replace(self, s0=float(self._s0_for(vi)))

    def __str__(self):
        return f"{self.kind}()" if self.s0 is None else f"{self.kind}({_fmt(self.s0)})"


@dataclass(frozen=True)
class DuMouchel(_ScaleReference):
    """DuMouchel's prior ``p(tau) = s0 / (s0 + tau)^2``: ``tau / (s0 + tau) ~ U(0, 1)``; ``s0^2 = k / sum(1/s_i^2)``."""

    kind: ClassVar[str] = "dumouchel"
    citation: ClassVar[str] = "DuMouchel 1994; Röver 2020 (doi:10.18637/jss.v093.i06)"
    s0: float | None = None

    def logpdf(self, x):
        s0 = self._need()
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, math.log(s0) - 2.0 * np.log(s0 + np.abs(x)), -np.inf)

    def cdf(self, x):
        s0 = self._need()
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        return x / (s0 + x)

    def ppf(self, q):
        q = np.asarray(q, dtype=float)
        with np.errstate(divide="ignore"):
            return self._need() * q / (1.0 - q)

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        d = pm.Uniform(f"{name}_dumouchel_u", 0.0, 1.0)
        return pm.Deterministic(name, self._need() * d / (1.0 - d), **kwargs)


@dataclass(frozen=True)
class UniformShrinkage(_ScaleReference):
    """Uniform shrinkage prior ``p(tau) = 2 s0^2 tau / (s0^2 + tau^2)^2``: ``s0^2 / (s0^2 + tau^2) ~ U(0, 1)``,
    ``s0^2 = k / sum(1/s_i^2)`` (Daniels 1999; bayesmeta's ``"shrinkage"``)."""

    kind: ClassVar[str] = "shrinkage"
    citation: ClassVar[str] = "Daniels 1999 (doi:10.2307/3316112)"
    s0: float | None = None

    def logpdf(self, x):
        s2 = self._need() ** 2
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            out = math.log(2.0 * s2) + np.log(np.abs(x)) - 2.0 * np.log(s2 + x * x)
        return np.where(x >= 0, out, -np.inf)

    def cdf(self, x):
        s2 = self._need() ** 2
        x2 = np.maximum(np.asarray(x, dtype=float), 0.0) ** 2
        return x2 / (s2 + x2)

    def ppf(self, q):
        q = np.asarray(q, dtype=float)
        with np.errstate(divide="ignore"):
            return self._need() * np.sqrt(q / (1.0 - q))

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        b = pm.Uniform(f"{name}_shrinkage_u", 0.0, 1.0)
        return pm.Deterministic(name, self._need() * pm.math.sqrt((1.0 - b) / b), **kwargs)


@dataclass(frozen=True)
class UniformI2(UniformShrinkage):
    """Uniform prior on ``I^2 = tau^2 / (tau^2 + s^2)``: ``p(tau) = 2 s^2 tau / (s^2 + tau^2)^2`` with
    Higgins and Thompson's typical within-study variance ``s^2`` (bayesmeta's ``"I2"``); ``s0`` is ``s``."""

    kind: ClassVar[str] = "i2"
    citation: ClassVar[str] = "Higgins & Thompson 2002 (doi:10.1002/sim.1186); Röver 2020"
    s0: float | None = None

    @staticmethod
    def _s0_for(vi) -> float:
        w = 1.0 / np.asarray(vi, dtype=float)
        k = w.size
        if k < 2:
            raise PriorError("i2(): the typical within-study variance needs at least two studies")
        return math.sqrt((k - 1) * w.sum() / (w.sum() ** 2 - (w * w).sum()))


def resolve_prior(prior: Prior | None, vi) -> Prior | None:
    """Fill in the data-dependent scale of a reference prior (``dumouchel()`` etc.) from the variances ``vi``.

    Other priors are returned unchanged.

    Examples
    --------
    >>> from ketabayes.model.priors import parse_prior
    >>> from ketabayes.model.priors_extra import resolve_prior
    >>> round(resolve_prior(parse_prior("dumouchel()"), [0.04, 0.01, 0.09]).s0, 4)
    0.1485
    """
    if prior is not None and hasattr(prior, "for_data"):
        return prior.for_data(vi)
    return prior

