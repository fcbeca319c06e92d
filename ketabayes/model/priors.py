"""Priors as data: small frozen dataclasses with a readable ``repr``.

Each prior knows

* its log density in NumPy (used by the exact engine),
* how to build itself as a PyMC random variable (used by NUTS),
* a round-trip to and from a plain ``dict`` (saved with every result),
* a short string form, ``"halfnormal(10)"``, that :func:`parse_prior` reads back
  (this is what the command line accepts).

Priors for the average effect ``mu``: :class:`Normal`, :class:`Flat`.
Priors for the between-study standard deviation ``tau``: :class:`HalfNormal`,
:class:`HalfCauchy`, :class:`HalfStudentT`, :class:`Exponential`,
:class:`Uniform`, and the empirical priors stated for ``tau**2``:
:class:`LogNormalTau2` (Turner et al. 2015) and :class:`LogStudentTTau2`
(Rhodes et al. 2015), built by :func:`turner_prior` and :func:`rhodes_prior`.

:func:`prior_panel` gives the sceptical / neutral / enthusiastic priors for
``mu`` defined relative to a minimal clinically important difference.

References
----------
Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta
R package. J Stat Softw 93(6). doi:10.18637/jss.v093.i06
Spiegelhalter DJ, Freedman LS, Parmar MKB (1994). Bayesian approaches to
randomized trials. J R Stat Soc A 157(3):357-416. doi:10.2307/2983527
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import special

from ketabayes.errors import PriorError

__all__ = [
    "Prior",
    "Normal",
    "Flat",
    "HalfNormal",
    "HalfCauchy",
    "HalfStudentT",
    "Exponential",
    "Uniform",
    "LogNormalTau2",
    "LogStudentTTau2",
    "turner_prior",
    "rhodes_prior",
    "parse_prior",
    "prior_from_dict",
    "prior_panel",
    "PriorPanel",
    "DEFAULT_TAU_PRIOR",
    "default_tau_prior",
    # defined in priors_extra
    "StudentT",
    "Cauchy",
    "Point",
    "InvGamma",
    "InvGammaTau2",
    "ImproperUniform",
    "Jeffreys",
    "DuMouchel",
    "UniformShrinkage",
    "UniformI2",
    "resolve_prior",
]

_REGISTRY: dict[str, type[Prior]] = {}


def _fmt(x: float) -> str:
    return f"{x:.6g}"


@dataclass(frozen=True)
class Prior:
    """Base class of all priors. Subclasses are frozen dataclasses."""

    kind: ClassVar[str] = ""
    #: ``"real"`` for location parameters, ``"positive"`` for scale parameters
    support: ClassVar[str] = "real"
    #: parameter names in the order used by the string form
    _params: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[cls.kind] = cls

    # -- numerics ---------------------------------------------------------
    def logpdf(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def proper(self) -> bool:
        return True

    def bounds(self) -> tuple[float, float]:
        """Support of the prior as ``(low, high)``."""
        return (-math.inf, math.inf) if self.support == "real" else (0.0, math.inf)

    def to_pymc(self, name: str, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- (de)serialisation --------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind}
        for f in dataclasses.fields(self):
            d[f.name] = getattr(self, f.name)
        return d

    def __str__(self) -> str:
        args = ", ".join(_fmt(getattr(self, p)) for p in self._params)
        return f"{self.kind}({args})"

    def describe(self) -> str:
        """One line: string form plus the citation, if any."""
        cite = getattr(self, "citation", "")
        return f"{self}" + (f"  [{cite}]" if cite else "")


def _positive(name: str, value: float, kind: str) -> None:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
        raise PriorError(f"{kind}: parameter {name!r} must be a positive finite number, got {value!r}")


#: range of scale parameters the engines can represent (tau**2 and 1/sigma**2 stay finite in double precision)
SCALE_RANGE = (1e-200, 1e200)


def _scale(name: str, value: float, kind: str) -> None:
    """A scale parameter: positive, finite and within :data:`SCALE_RANGE`."""
    _positive(name, value, kind)
    if not SCALE_RANGE[0] <= value <= SCALE_RANGE[1]:
        raise PriorError(f"{kind}: scale {name!r} = {value!r} is outside the range {SCALE_RANGE[0]:g} to "
                         f"{SCALE_RANGE[1]:g} that can be computed with in double precision; rescale the data "
                         "(e.g. change units) so that the prior's scale is within it")


def _location(name: str, value: float, kind: str, limit: float = SCALE_RANGE[1]) -> None:
    _finite(name, value, kind)
    if abs(value) > limit:
        raise PriorError(f"{kind}: parameter {name!r} = {value!r} is beyond +/-{limit:g}, outside the range that "
                         "can be computed with in double precision; rescale the data")


_LOG2 = math.log(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _t_logpdf(z, nu):
    """log density of the standard Student-t (closed form; cheaper than scipy.stats for small arrays)."""
    c = math.lgamma(0.5 * (nu + 1)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi)
    with np.errstate(over="ignore"):
        return c - 0.5 * (nu + 1) * np.log1p(np.asarray(z, dtype=float) ** 2 / nu)


def _finite(name: str, value: float, kind: str) -> None:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)):
        raise PriorError(f"{kind}: parameter {name!r} must be a finite number, got {value!r}")


# ---------------------------------------------------------------------------
# priors for mu
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Normal(Prior):
    """Normal prior ``N(mu, sigma**2)`` for the average effect.

    Parameters
    ----------
    mu, sigma : float
        Mean and standard deviation (on the analysis scale, e.g. log OR).
    label : str, optional
        A name such as ``"sceptical"`` shown in tables.
    """

    kind: ClassVar[str] = "normal"
    _params: ClassVar[tuple[str, ...]] = ("mu", "sigma")
    mu: float = 0.0
    sigma: float = 1.0
    label: str = ""
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self):
        _location("mu", self.mu, self.kind)
        _scale("sigma", self.sigma, self.kind)
        for name in ("lower", "upper"):
            if getattr(self, name) is not None:
                _location(name, getattr(self, name), self.kind)
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise PriorError(f"normal: need lower < upper, got lower={self.lower}, upper={self.upper}")

    @property
    def truncated(self) -> bool:
        return self.lower is not None or self.upper is not None

    def bounds(self) -> tuple[float, float]:
        return (-math.inf if self.lower is None else float(self.lower),
                math.inf if self.upper is None else float(self.upper))

    def _log_mass(self) -> float:
        lo, hi = self.bounds()
        za, zb = (lo - self.mu) / self.sigma, (hi - self.mu) / self.sigma
        # upper tail via the lower tail of the mirror image, for accuracy far in the tails
        mass = float(special.ndtr(-za) - special.ndtr(-zb)) if za > 0 else float(special.ndtr(zb) - special.ndtr(za))
        if not mass > 0:
            raise PriorError(f"{self}: no prior mass between the truncation bounds")
        return math.log(mass)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        z = (x - self.mu) / self.sigma
        out = -_LOG_SQRT_2PI - math.log(self.sigma) - 0.5 * z * z
        if self.truncated:
            lo, hi = self.bounds()
            out = np.where((x >= lo) & (x <= hi), out - self._log_mass(), -np.inf)
        return out

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        if not self.truncated:
            return special.ndtr((x - self.mu) / self.sigma)
        lo, hi = self.bounds()
        c = special.ndtr((np.clip(x, lo, hi) - self.mu) / self.sigma) - special.ndtr((lo - self.mu) / self.sigma)
        return np.clip(c / math.exp(self._log_mass()), 0.0, 1.0)

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        if not self.truncated:
            return pm.Normal(name, mu=self.mu, sigma=self.sigma, **kwargs)
        return pm.TruncatedNormal(name, mu=self.mu, sigma=self.sigma, lower=self.lower, upper=self.upper, **kwargs)

    def to_dict(self):
        d = super().to_dict()
        for name in ("lower", "upper"):  # older files have no bounds
            if d[name] is None:
                del d[name]
        return d

    def __str__(self):
        b = "" if self.lower is None else f", lower={_fmt(self.lower)}"
        b += "" if self.upper is None else f", upper={_fmt(self.upper)}"
        return f"normal({_fmt(self.mu)}, {_fmt(self.sigma)}{b})"


@dataclass(frozen=True)
class Flat(Prior):
    """Improper uniform prior on the real line (bayesmeta's default for ``mu``).

    The posterior is proper for at least one study, but marginal likelihoods
    (Bayes factors) are not defined under it.
    """

    kind: ClassVar[str] = "flat"

    def logpdf(self, x):
        return np.zeros_like(np.asarray(x, dtype=float))

    @property
    def proper(self) -> bool:
        return False

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.Flat(name, **kwargs)

    def __str__(self):
        return "flat()"


# ---------------------------------------------------------------------------
# priors for tau
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HalfNormal(Prior):
    """Half-normal prior for ``tau`` with scale ``sigma`` (Röver 2020, sec. 3.3)."""

    kind: ClassVar[str] = "halfnormal"
    support: ClassVar[str] = "positive"
    _params: ClassVar[tuple[str, ...]] = ("sigma",)
    sigma: float = 1.0

    def __post_init__(self):
        _scale("sigma", self.sigma, self.kind)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        z = x / self.sigma
        return np.where(x >= 0, _LOG2 - _LOG_SQRT_2PI - math.log(self.sigma) - 0.5 * z * z, -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x > 0, special.erf(np.maximum(x, 0.0) / (self.sigma * math.sqrt(2.0))), 0.0)

    def ppf(self, q):
        return self.sigma * special.ndtri(0.5 * (1.0 + np.asarray(q, dtype=float)))

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.HalfNormal(name, sigma=self.sigma, **kwargs)


@dataclass(frozen=True)
class HalfCauchy(Prior):
    """Half-Cauchy prior for ``tau`` with scale ``beta`` (Gelman 2006, doi:10.1214/06-BA117A)."""

    kind: ClassVar[str] = "halfcauchy"
    support: ClassVar[str] = "positive"
    _params: ClassVar[tuple[str, ...]] = ("beta",)
    beta: float = 1.0

    def __post_init__(self):
        _scale("beta", self.beta, self.kind)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        z = np.abs(x) / self.beta
        with np.errstate(divide="ignore"):
            # log1p(z^2) without overflow for large z
            l1 = np.where(z < 1e100, np.log1p(np.minimum(z, 1e100) ** 2), 2.0 * np.log(z))
        return np.where(x >= 0, math.log(2.0 / (math.pi * self.beta)) - l1, -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x > 0, (2.0 / math.pi) * np.arctan(np.maximum(x, 0.0) / self.beta), 0.0)

    def ppf(self, q):
        return self.beta * np.tan(0.5 * math.pi * np.asarray(q, dtype=float))

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.HalfCauchy(name, beta=self.beta, **kwargs)


@dataclass(frozen=True)
class HalfStudentT(Prior):
    """Half-Student-t prior for ``tau`` with ``nu`` degrees of freedom and scale ``sigma``."""

    kind: ClassVar[str] = "halfstudentt"
    support: ClassVar[str] = "positive"
    _params: ClassVar[tuple[str, ...]] = ("nu", "sigma")
    nu: float = 3.0
    sigma: float = 1.0

    def __post_init__(self):
        _positive("nu", self.nu, self.kind)
        _scale("sigma", self.sigma, self.kind)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        out = _LOG2 + _t_logpdf(x / self.sigma, self.nu) - math.log(self.sigma)
        return np.where(x >= 0, out, -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x > 0, 2.0 * special.stdtr(self.nu, np.maximum(x, 0.0) / self.sigma) - 1.0, 0.0)

    def ppf(self, q):
        return self.sigma * special.stdtrit(self.nu, 0.5 * (1.0 + np.asarray(q, dtype=float)))

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.HalfStudentT(name, nu=self.nu, sigma=self.sigma, **kwargs)


@dataclass(frozen=True)
class Exponential(Prior):
    """Exponential prior for ``tau`` with rate ``lam`` (mean ``1/lam``)."""

    kind: ClassVar[str] = "exponential"
    support: ClassVar[str] = "positive"
    _params: ClassVar[tuple[str, ...]] = ("lam",)
    lam: float = 1.0

    def __post_init__(self):
        _scale("lam", self.lam, self.kind)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, math.log(self.lam) - self.lam * x, -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x > 0, -np.expm1(-self.lam * np.maximum(x, 0.0)), 0.0)

    def ppf(self, q):
        return -np.log1p(-np.asarray(q, dtype=float)) / self.lam

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.Exponential(name, lam=self.lam, **kwargs)


@dataclass(frozen=True)
class Uniform(Prior):
    """Uniform prior for ``tau`` on ``[lower, upper]``."""

    kind: ClassVar[str] = "uniform"
    support: ClassVar[str] = "positive"
    _params: ClassVar[tuple[str, ...]] = ("lower", "upper")
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self):
        _finite("lower", self.lower, self.kind)
        _scale("upper", self.upper, self.kind)
        if self.lower < 0 or self.lower >= self.upper:
            raise PriorError(f"uniform: need 0 <= lower < upper, got lower={self.lower}, upper={self.upper}")

    def bounds(self) -> tuple[float, float]:
        return (float(self.lower), float(self.upper))

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where((x >= self.lower) & (x <= self.upper), -math.log(self.upper - self.lower), -np.inf)

    def cdf(self, x):
        return np.clip((np.asarray(x, dtype=float) - self.lower) / (self.upper - self.lower), 0.0, 1.0)

    def ppf(self, q):
        return self.lower + np.asarray(q, dtype=float) * (self.upper - self.lower)

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        return pm.Uniform(name, lower=self.lower, upper=self.upper, **kwargs)


class _Tau2Prior(Prior):
    """A prior stated on ``log(tau**2)``; density on ``tau`` by change of variables.

    If ``g`` is the density of ``l = log(tau**2) = 2 log(tau)`` then the density of
    ``tau`` is ``g(2 log tau) * 2 / tau``.
    """

    support: ClassVar[str] = "positive"

    def _log_l_density(self, l):  # pragma: no cover - abstract
        raise NotImplementedError

    def _l_cdf(self, l):  # pragma: no cover - abstract
        raise NotImplementedError

    def _l_ppf(self, q):  # pragma: no cover - abstract
        raise NotImplementedError

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self._log_l_density(2.0 * np.log(x)) + math.log(2.0) - np.log(x)
        return np.where(x > 0, out, -np.inf)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            return np.where(x > 0, self._l_cdf(2.0 * np.log(np.maximum(x, 0.0))), 0.0)

    def ppf(self, q):
        with np.errstate(over="ignore"):
            return np.exp(0.5 * self._l_ppf(np.asarray(q, dtype=float)))


@dataclass(frozen=True)
class LogNormalTau2(_Tau2Prior):
    """Log-normal prior for ``tau**2``: ``log(tau**2) ~ N(mu, sigma**2)``.

    The form of the empirical priors of Turner et al. (2015) for log odds
    ratios; see :func:`turner_prior`.
    """

    kind: ClassVar[str] = "lognormaltau2"
    _params: ClassVar[tuple[str, ...]] = ("mu", "sigma")
    mu: float = -2.0
    sigma: float = 1.5
    citation: str = ""

    def __post_init__(self):
        _location("mu", self.mu, self.kind, limit=900.0)
        _positive("sigma", self.sigma, self.kind)

    def _log_l_density(self, l):
        z = (np.asarray(l, dtype=float) - self.mu) / self.sigma
        return -_LOG_SQRT_2PI - math.log(self.sigma) - 0.5 * z * z

    def _l_cdf(self, l):
        return special.ndtr((l - self.mu) / self.sigma)

    def _l_ppf(self, q):
        return self.mu + self.sigma * special.ndtri(q)

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        log_tau2 = pm.Normal(f"log_{name}2", mu=self.mu, sigma=self.sigma, **kwargs)
        return pm.Deterministic(name, pm.math.exp(0.5 * log_tau2), **kwargs)


@dataclass(frozen=True)
class LogStudentTTau2(_Tau2Prior):
    """Log-Student-t prior for ``tau**2``: ``log(tau**2) ~ t_nu(mu, sigma)``.

    The form of the empirical priors of Rhodes et al. (2015) for standardised
    mean differences (``nu = 5``); see :func:`rhodes_prior`.
    """

    kind: ClassVar[str] = "logttau2"
    _params: ClassVar[tuple[str, ...]] = ("mu", "sigma", "nu")
    mu: float = -2.0
    sigma: float = 1.5
    nu: float = 5.0
    citation: str = ""

    def __post_init__(self):
        _location("mu", self.mu, self.kind, limit=900.0)
        _positive("sigma", self.sigma, self.kind)
        _positive("nu", self.nu, self.kind)

    def _log_l_density(self, l):
        return _t_logpdf((np.asarray(l, dtype=float) - self.mu) / self.sigma, self.nu) - math.log(self.sigma)

    def _l_cdf(self, l):
        return special.stdtr(self.nu, (l - self.mu) / self.sigma)

    def _l_ppf(self, q):
        return self.mu + self.sigma * special.stdtrit(self.nu, q)

    def to_pymc(self, name, **kwargs):
        import pymc as pm

        log_tau2 = pm.StudentT(f"log_{name}2", nu=self.nu, mu=self.mu, sigma=self.sigma, **kwargs)
        return pm.Deterministic(name, pm.math.exp(0.5 * log_tau2), **kwargs)


#: Default prior for tau on the log-OR, log-RR and SMD scales.
DEFAULT_TAU_PRIOR = HalfNormal(0.5)


def default_tau_prior(measure: str, vi=None, n=None) -> Prior:
    """Weakly informative default prior for ``tau``, by measure.

    * log OR, log RR, log HR, SMD: ``halfnormal(0.5)`` (Röver et al. 2021; Friede et al. 2017).
    * MD, RD and generic effects, whose scale is the outcome's own: ``halfnormal(0.5 * UISD)``
      where ``UISD = sqrt(sum(n) / sum(1 / vi))`` is the unit-information standard deviation
      (Röver et al. 2021), which needs the studies' total sample sizes ``n``. Without
      sample sizes there is no defensible default and a :class:`~ketabayes.errors.PriorError`
      asks for an explicit prior.

    The prior used is stored and printed with every result.

    References
    ----------
    Röver C, Bender R, Dias S, Schmid CH, Schmidli H, Sturtz S, Weber S, Friede T (2021).
    On weakly informative prior distributions for the heterogeneity parameter in Bayesian
    random-effects meta-analysis. Res Synth Methods 12(4):448-474. doi:10.1002/jrsm.1475
    """
    m = (measure or "GEN").upper()
    if m in {"OR", "RR", "HR", "SMD"}:
        return HalfNormal(0.5)
    if vi is None or n is None or not np.all(np.isfinite(np.asarray(n, dtype=float))):
        raise PriorError(
            f"no default prior for tau on the {m} scale without sample sizes: give one explicitly, "
            "e.g. prior_tau='halfnormal(10)' (CLI: --prior-tau \"halfnormal(10)\") in the units of the outcome"
        )
    vi = np.asarray(vi, dtype=float)
    uisd = math.sqrt(float(np.sum(n)) / float(np.sum(1.0 / vi)))
    return HalfNormal(float(f"{0.5 * uisd:.4g}"))


# ---------------------------------------------------------------------------
# parsing and dict round-trip
# ---------------------------------------------------------------------------
_ALIASES = {
    "n": "normal", "gaussian": "normal", "normal": "normal",
    "flat": "flat", "improper": "flat",
    "halfnormal": "halfnormal", "hn": "halfnormal", "half-normal": "halfnormal", "half_normal": "halfnormal",
    "halfcauchy": "halfcauchy", "half-cauchy": "halfcauchy", "half_cauchy": "halfcauchy", "hc": "halfcauchy",
    "halfstudentt": "halfstudentt", "halft": "halfstudentt", "half-t": "halfstudentt",
    "half-student-t": "halfstudentt", "half_student_t": "halfstudentt",
    "exponential": "exponential", "exp": "exponential",
    "uniform": "uniform", "unif": "uniform",
    "lognormaltau2": "lognormaltau2", "lognormal": "lognormaltau2",
    "logttau2": "logttau2", "logt": "logttau2", "logstudentttau2": "logttau2",
    "turner": "turner", "rhodes": "rhodes",
    "studentt": "studentt", "t": "studentt", "student-t": "studentt", "student_t": "studentt",
    "cauchy": "cauchy", "point": "point", "pointmass": "point",
    "invgamma": "invgamma", "inversegamma": "invgamma", "invgammatau2": "invgammatau2",
    "improperuniform": "improperuniform", "jeffreys": "jeffreys", "dumouchel": "dumouchel",
    "shrinkage": "shrinkage", "uniformshrinkage": "shrinkage", "i2": "i2", "uniformi2": "i2",
}

_SYNTAX = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_\-]*)\s*\((.*)\)\s*$")


def parse_prior(text: str | Prior | dict) -> Prior:
    """Read a prior from its string form, e.g. ``"halfnormal(10)"``.

    Accepted forms (case-insensitive)::

        normal(mean, sd)          flat()
        studentt(nu, mean, scale) cauchy(location, scale)  point(value)
        halfnormal(scale)         halfcauchy(scale)       halfstudentt(nu, scale)
        exponential(rate)         uniform(lower, upper)
        lognormaltau2(mean, sd)   logttau2(location, scale[, nu])
        invgamma(shape, scale)    invgammatau2(shape, scale)
        improperuniform()  jeffreys()  dumouchel([s0])  shrinkage([s0])  i2([s])
        turner(outcome, comparison)   rhodes(outcome, comparison)

    ``normal``, ``studentt`` and ``cauchy`` take ``lower=`` / ``upper=`` for truncation,
    e.g. ``"cauchy(0, 0.707, lower=0)"``. The data-dependent reference priors are
    resolved against the studies' variances by the models
    (:func:`~ketabayes.model.priors_extra.resolve_prior`).

    A :class:`Prior` is returned unchanged and a ``dict`` goes through
    :func:`prior_from_dict`.

    Examples
    --------
    >>> from ketabayes.model.priors import parse_prior
    >>> parse_prior("halfnormal(10)")
    HalfNormal(sigma=10.0)
    >>> str(parse_prior("normal(0, 50)"))
    'normal(0, 50)'
    """
    if isinstance(text, Prior):
        return text
    if isinstance(text, dict):
        return prior_from_dict(text)
    if not isinstance(text, str):
        raise PriorError(f"cannot read a prior from {text!r}; write e.g. 'halfnormal(10)'")
    m = _SYNTAX.match(text)
    if not m:
        raise PriorError(f"cannot read prior {text!r}; write e.g. 'normal(0, 50)' or 'halfnormal(10)'")
    name, args = m.group(1).lower(), m.group(2).strip()
    kind = _ALIASES.get(name)
    if kind is None:
        import difflib

        close = difflib.get_close_matches(name, sorted(_ALIASES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PriorError(f"unknown prior {name!r} in {text!r}{hint}")
    parts = [a.strip() for a in args.split(",")] if args else []
    kw = {}
    if kind not in {"turner", "rhodes"}:
        while parts and "=" in parts[-1]:
            key, _, val = parts.pop().partition("=")
            key = key.strip().lower()
            if key not in {"lower", "upper"} or kind not in {"normal", "studentt", "cauchy"}:
                raise PriorError(f"prior {text!r}: unknown keyword {key!r} (normal, studentt and cauchy take "
                                 "lower= and upper=)")
            try:
                kw[key] = float(val)
            except ValueError:
                raise PriorError(f"prior {text!r}: {key}= must be a number") from None
        if any("=" in p for p in parts):
            raise PriorError(f"prior {text!r}: keywords (lower=, upper=) come after the numbers")
    if kind in {"turner", "rhodes"}:
        parts = [p.strip("'\"") for p in parts]
        from ketabayes.model.empirical_priors import rhodes_prior, turner_prior

        fn = turner_prior if kind == "turner" else rhodes_prior
        n_max = 2 if kind == "turner" else 3
        if len(parts) > n_max or any(not p for p in parts):
            raise PriorError(f"prior {text!r}: {kind}() takes up to {n_max} names "
                             f"({'outcome, comparison' + (', area' if kind == 'rhodes' else '')}), got {len(parts)}")
        return fn(*parts)
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise PriorError(f"prior {text!r}: arguments must be numbers") from None
    cls = _REGISTRY[kind]
    expected = {"normal": (2,), "flat": (0,), "halfnormal": (1,), "halfcauchy": (1,),
                "halfstudentt": (2,), "exponential": (1,), "uniform": (1, 2),
                "lognormaltau2": (2,), "logttau2": (2, 3), "studentt": (3,), "cauchy": (2,), "point": (1,),
                "invgamma": (2,), "invgammatau2": (2,), "improperuniform": (0,), "jeffreys": (0,),
                "dumouchel": (0, 1), "shrinkage": (0, 1), "i2": (0, 1)}[kind]
    if len(values) not in expected:
        raise PriorError(f"prior {text!r}: {kind} takes {' or '.join(map(str, expected))} argument(s), got {len(values)}")
    if kind == "uniform" and len(values) == 1:
        values = [0.0, values[0]]
    if kind == "halfstudentt":
        return HalfStudentT(nu=values[0], sigma=values[1])
    if kind == "logttau2":
        return LogStudentTTau2(*values)
    if kind == "normal":
        return Normal(values[0], values[1], **kw)
    return cls(*values, **kw)


def prior_from_dict(d: dict) -> Prior:
    """Inverse of :meth:`Prior.to_dict`."""
    d = dict(d)
    if d.get("kind") == "jeffreys" and "se" in d:
        d["se"] = tuple(d["se"])
    kind = d.pop("kind", None)
    if kind not in _REGISTRY:
        raise PriorError(f"unknown prior kind {kind!r} in {d!r}")
    return _REGISTRY[kind](**d)


# the MCID prior panel and the priors of priors_extra (which register their kinds) live in their own modules
from ketabayes.model.empirical_priors import rhodes_prior, turner_prior  # noqa: E402
from ketabayes.model.prior_panel import PriorPanel, prior_panel  # noqa: E402
from ketabayes.model.priors_extra import (  # noqa: E402
    Cauchy,
    DuMouchel,
    ImproperUniform,
    InvGamma,
    InvGammaTau2,
    Jeffreys,
    Point,
    StudentT,
    UniformI2,
    UniformShrinkage,
    resolve_prior,
)
