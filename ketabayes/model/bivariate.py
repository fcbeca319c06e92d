"""Bivariate random-effects meta-analysis of a benefit and a harm outcome.

Each trial reports an efficacy estimate (e.g. pain MD) and/or a harm estimate (e.g. the log RR
of any adverse event); a trial that reports only one still contributes. The within-trial
correlation of the two estimates is rarely reported: it is an explicit assumption
(``rho_within``), recorded per trial with the result -- with ``rho_within=None`` it is set to 0
and a note says so. The between-trial correlation of the true effects gets a prior (LKJ,
uniform on (-1, 1) by default).

The joint posterior answers the trade-off question directly: the probability of a benefit
beyond the MCID *and* harm below its threshold (:meth:`BivariateResult.joint_table`), and
net-benefit summaries with stated trade-off weights (:meth:`BivariateResult.net_benefit`).

References
----------
Riley RD, Abrams KR, Sutton AJ, Lambert PC, Thompson JR (2007). Bivariate random-effects
meta-analysis and the estimation of between-study correlation. BMC Med Res Methodol 7:3.
doi:10.1186/1471-2288-7-3
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.decision import RATIO_MEASURES, Thresholds
from ketabayes.errors import DataError, KetabayesError
from ketabayes.model._fit_common import Described, check_method, draw_seed, fit_settings, prior_entry
from ketabayes.model.priors import Flat, Normal, Prior, default_tau_prior, parse_prior

__all__ = ["BivariateModel", "OUTCOME"]

#: dimension name of the two outcomes
OUTCOME = "outcome"


def _pair(x, default, what):
    if x is None:
        return (default, default)
    if isinstance(x, (list, tuple)):
        if len(x) != 2:
            raise KetabayesError(f"{what} takes one value or a pair (efficacy, harm), got {x!r}")
        return tuple(x)
    return (x, x)


class BivariateModel(Described):
    """Bivariate normal-normal meta-analysis of an efficacy and a harm outcome.

    ``y_i ~ N2(theta_i, S_i)`` with known variances and within-trial correlation ``rho_within``;
    ``theta_i ~ N2(mu, Sigma)``, ``Sigma`` with SDs ``tau1, tau2`` and correlation ``rho_between``.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial.
    efficacy, harm : (str, str)
        Column names ``(yi, vi)`` of each outcome (blank/NaN where a trial does not report it).
    measures : (str, str)
        Measures of the two outcomes, e.g. ``("MD", "RR")``; ratio measures are on the log scale.
    outcomes : (str, str)
        Labels of the two outcomes (target names ``mean|outcome=<label>``).
    rho_within : float, str or None
        Within-trial correlation of the two estimates: a number for every trial, a column name
        (per trial), or ``None``: 0, with a note recorded in :attr:`assumptions` and the result.
    prior_mu : Prior, str or pair, optional
        Prior(s) of the average effects (normal or flat; default flat).
    prior_tau : Prior, str or pair, optional
        Prior(s) of the between-trial SDs (default: :func:`~ketabayes.model.priors.default_tau_prior`
        of each measure; MD needs an explicit one).
    rho_eta : float
        LKJ shape of the between-trial correlation (1: uniform on (-1, 1)).
    fixed : bool
        Fixed-effect model (no between-trial variation), as for two published pooled estimates.
    study : str

    Examples
    --------
    >>> import ketabayes as kb
    >>> m = kb.BivariateModel.from_published((-15.79, -32.09, 0.51, "MD"), (3.26, 1.05, 10.09, "RR"), rho=0.0)
    >>> res = m.fit(mcid=10, harm_threshold=1.25, seed=1)
    >>> round(float(res.joint_table().set_index("target").loc["mean", "p_benefit_acceptable_harm"]), 4)
    0.0366
    """

    def __init__(self, data: pd.DataFrame, *, efficacy=("yi1", "vi1"), harm=("yi2", "vi2"), measures=("MD", "RR"),
                 outcomes=("efficacy", "harm"), rho_within=None, prior_mu=None, prior_tau=None,
                 rho_eta: float = 1.0, fixed: bool = False, study: str = dims.STUDY_COL):
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
        df = data.copy()
        if study not in df.columns:
            df[study] = [f"Study {i + 1}" for i in range(len(df))]
        self.studies = df[study].astype(str).tolist()
        self.measures = tuple(str(m).upper() for m in measures)
        self.outcomes = tuple(str(o) for o in outcomes)
        if len(self.measures) != 2 or len(self.outcomes) != 2 or self.outcomes[0] == self.outcomes[1]:
            raise KetabayesError("measures and outcomes must be pairs (efficacy, harm) with distinct outcome labels")
        cols = [tuple(efficacy), tuple(harm)]
        y = np.full((len(df), 2), np.nan)
        v = np.full((len(df), 2), np.nan)
        for j, (yc, vc) in enumerate(cols):
            for c in (yc, vc):
                if c not in df.columns:
                    raise DataError(f"column {c!r} (outcome {self.outcomes[j]}) is missing", column=c)
            y[:, j] = pd.to_numeric(df[yc], errors="coerce").to_numpy(dtype=float)
            v[:, j] = pd.to_numeric(df[vc], errors="coerce").to_numpy(dtype=float)
            for i, s in enumerate(self.studies):
                if np.isfinite(y[i, j]) != np.isfinite(v[i, j]):
                    raise DataError(f"{yc} and {vc} must both be given or both be blank", study=s,
                                    column=vc if np.isfinite(y[i, j]) else yc)
                if np.isfinite(v[i, j]) and not v[i, j] > 0:
                    raise DataError(f"sampling variance must be positive, got {v[i, j]!r}", study=s, column=vc)
        for i, s in enumerate(self.studies):
            if not np.isfinite(y[i]).any():
                raise DataError("the trial reports neither outcome (every row must report at least one)", study=s,
                                column=cols[0][0])
        for j in (0, 1):
            if not np.isfinite(y[:, j]).any():
                raise DataError(f"no trial reports outcome {self.outcomes[j]!r}", column=cols[j][0])
        self.y, self.v = y, v
        self.columns = {"efficacy": list(cols[0]), "harm": list(cols[1])}
        self.assumptions: list[str] = []
        both = np.isfinite(y).all(1)
        if rho_within is None:
            rw = np.zeros(len(df))
            if both.any():
                self.assumptions.append("within-trial correlation not given: assumed 0 for every trial that reports "
                                        "both outcomes (vary it with rho_within=...)")
            self.rho_within_source = "assumed 0 (not given)"
        elif isinstance(rho_within, str):
            if rho_within not in df.columns:
                raise DataError(f"rho_within column {rho_within!r} is missing", column=rho_within)
            rw = pd.to_numeric(df[rho_within], errors="coerce").to_numpy(dtype=float)
            for i, s in enumerate(self.studies):
                if both[i] and not np.isfinite(rw[i]):
                    raise DataError("within-trial correlation missing for a trial that reports both outcomes",
                                    study=s, column=rho_within)
            rw = np.where(np.isfinite(rw), rw, 0.0)
            self.rho_within_source = f"column {rho_within!r}"
        else:
            rw = np.full(len(df), float(rho_within))
            self.rho_within_source = f"assumed {float(rho_within):g} for every trial"
            if both.any():
                self.assumptions.append(f"within-trial correlation assumed {float(rho_within):g} (an assumption: "
                                        "vary it)")
        for i, s in enumerate(self.studies):
            if not -1.0 < rw[i] < 1.0:
                raise DataError(f"within-trial correlation must be in (-1, 1), got {rw[i]!r}", study=s,
                                column="rho_within")
        self.rho_within = rw
        self.fixed = bool(fixed)
        pm = _pair(prior_mu, Flat(), "prior_mu")
        self.prior_mu = tuple(parse_prior(p) if not isinstance(p, Prior) else p for p in pm)
        for p in self.prior_mu:
            if not isinstance(p, (Normal, Flat)):
                raise KetabayesError(f"prior_mu must be normal(mean, sd) or flat(), got {p}")
        if self.fixed:
            self.prior_tau = None
        else:
            pt = _pair(prior_tau, None, "prior_tau")
            self.prior_tau = tuple(
                parse_prior(p) if p is not None else default_tau_prior(m, v[np.isfinite(v[:, j]), j])
                for j, (p, m) in enumerate(zip(pt, self.measures)))
            for p in self.prior_tau:
                if p.support != "positive":
                    raise KetabayesError(f"prior_tau must be a prior on tau > 0, got {p}")
        if not (math.isfinite(rho_eta) and rho_eta > 0):
            raise KetabayesError(f"rho_eta (LKJ shape) must be positive, got {rho_eta!r}")
        self.rho_eta = float(rho_eta)
        self.source = "trials"

    # ------------------------------------------------------------------
    @classmethod
    def from_published(cls, efficacy, harm, *, rho: float | None = None, prior_mu=None,
                       outcomes=("efficacy", "harm"), label: str = "published pooled estimates") -> BivariateModel:
        """Two published pooled estimates with CIs, ``(estimate, ci_low, ci_high, measure)`` each.

        A pooled estimate carries no information on between-trial variation, so this is a
        fixed-effect bivariate model of the two average effects; ``rho`` is the assumed correlation
        of the two pooled estimates (``None``: 0, recorded as an assumption).
        """
        from ketabayes.data.published import from_published

        rows = []
        for j, spec in enumerate((efficacy, harm)):
            if not isinstance(spec, (list, tuple)) or len(spec) != 4:
                raise KetabayesError(f"{outcomes[j]}: give (estimate, ci_low, ci_high, measure), got {spec!r}")
            rows.append(from_published(*spec[:3], spec[3], label=f"{label} ({outcomes[j]})"))
        df = pd.DataFrame({dims.STUDY_COL: [label], "yi1": [rows[0]["yi"].iloc[0]], "vi1": [rows[0]["vi"].iloc[0]],
                           "yi2": [rows[1]["yi"].iloc[0]], "vi2": [rows[1]["vi"].iloc[0]]})
        model = cls(df, measures=(efficacy[3], harm[3]), outcomes=outcomes, rho_within=rho, prior_mu=prior_mu,
                    fixed=True)
        if rho is None:
            model.assumptions[:] = ["correlation of the two pooled estimates not given: assumed 0 (vary it with rho=...)"]
        else:
            model.assumptions[:] = [f"correlation of the two pooled estimates assumed {rho:g} (an assumption: vary it)"]
        model.source = "published"
        model.published = {outcomes[j]: {"estimate": s[0], "ci_low": s[1], "ci_high": s[2], "measure": str(s[3])}
                           for j, s in enumerate((efficacy, harm))}
        return model

    @property
    def k(self) -> int:
        return len(self.studies)

    def describe(self) -> str:
        kind = "fixed-effect" if self.fixed else "random-effects"
        lines = [f"Bivariate normal-normal {kind} meta-analysis of {self.k} trial(s): "
                 f"{self.outcomes[0]} ({self.measures[0]}), {self.outcomes[1]} ({self.measures[1]})",
                 f"  trials reporting each outcome: {int(np.isfinite(self.y[:, 0]).sum())}, "
                 f"{int(np.isfinite(self.y[:, 1]).sum())}; within-trial correlation: {self.rho_within_source}"]
        for j in (0, 1):
            lines.append(f"  prior mu[{self.outcomes[j]}]: {self.prior_mu[j].describe()}")
            if not self.fixed:
                lines.append(f"  prior tau[{self.outcomes[j]}]: {self.prior_tau[j].describe()}")
        if not self.fixed:
            lines.append(f"  prior rho_between: LKJ({self.rho_eta:g})" + (" = uniform(-1, 1)" if self.rho_eta == 1 else ""))
        lines += [f"  assumption: {a}" for a in self.assumptions]
        return "\n".join(lines)

    def data_hash(self) -> str:
        from ketabayes.provenance import data_hash

        return data_hash(np.nan_to_num(self.y.ravel(), nan=-1e300), np.nan_to_num(self.v.ravel(), nan=-1e300),
                         labels=self.studies, extra="|".join(self.measures) + "|" + ",".join(map(str, self.rho_within)))

    # ------------------------------------------------------------------
    def fit(self, method: str = "exact", *, mcid: float | None = None, harm_threshold: float | None = None,
            benefit=("lower", "lower"), seed: int | None = None, draws: int = 1000, chains: int = 4, settings=None):
        """Fit with the exact engine (quadrature over tau1, tau2, rho_between; closed forms given them).

        Parameters
        ----------
        mcid : float, optional
            MCID of the efficacy outcome (points; a ratio for OR/RR).
        harm_threshold : float, optional
            Threshold of the harm outcome beyond which harm is unacceptable (a ratio for OR/RR,
            e.g. ``1.25``; points otherwise).
        benefit : pair of {"lower", "higher"}
            Direction of benefit of each outcome (lower pain, fewer adverse events: ``("lower", "lower")``).
        seed : int, optional
            Seed of the stored draws (summaries are exact and do not depend on it).
        draws, chains : int
            Shape of the stored draws.
        settings : BivariateGrid, optional

        Returns
        -------
        BivariateResult
        """
        from ketabayes.inference.exact_bivariate import BivariateGrid, ExactBivariate
        from ketabayes.result.bivariate_result import BivariateResult, bivariate_tree

        check_method(method, ("exact",))
        seed = draw_seed(seed)
        ben = _pair(benefit, "lower", "benefit")
        ths = {}
        for j, val in enumerate((mcid, harm_threshold)):
            if val is not None:
                ths[self.outcomes[j]] = Thresholds.for_measure(val, self.measures[j], ben[j]).to_dict()
        priors = {"prior_mu": {o: prior_entry(p, short=True) for o, p in zip(self.outcomes, self.prior_mu)}}
        if not self.fixed:
            priors["prior_tau"] = {o: prior_entry(p) for o, p in zip(self.outcomes, self.prior_tau)}
            priors["prior_rho_between"] = {"kind": "lkj", "eta": self.rho_eta, "text": f"LKJ({self.rho_eta:g})"}
        st = fit_settings("bivariate", method, "/".join(self.measures), head={"fixed": self.fixed}, priors=priors,
                          thresholds=None, seed=seed, draws=draws, chains=chains, excluded=[],
                          data_hash=self.data_hash())
        st.update(measures=list(self.measures), outcomes=list(self.outcomes), thresholds_by_outcome=ths,
                  benefit_directions=list(ben), assumptions=list(self.assumptions),
                  rho_within_source=self.rho_within_source, rho_eta=self.rho_eta, source=self.source,
                  columns=self.columns)
        if self.source == "published":
            st["published"] = self.published
        grid = settings or BivariateGrid()
        exact = ExactBivariate(self.y, self.v, self.rho_within, self.prior_mu, self.prior_tau, rho_eta=self.rho_eta,
                               fixed=self.fixed, settings=grid)
        st["engine_settings"] = grid.to_dict()
        tree = bivariate_tree(exact, self.studies, self.outcomes, seed, chains, draws)
        from ketabayes.inference.arviz_groups_multi import add_bivariate_groups

        tree = add_bivariate_groups(tree, self.y, self.v, self.rho_within, self.prior_mu, self.prior_tau, self.rho_eta,
                                    seed=seed, outcomes=self.outcomes)
        return BivariateResult(tree, st, exact=exact)

    def pymc_model(self):
        """PyMC model of the same posterior (trial effects integrated out), for a NUTS cross-check.

        See :func:`ketabayes.inference.nuts_bivariate.build_bivariate`.
        """
        from ketabayes.inference.nuts_bivariate import build_bivariate

        return build_bivariate(self)


def is_ratio(measure: str) -> bool:
    return measure.upper() in RATIO_MEASURES
