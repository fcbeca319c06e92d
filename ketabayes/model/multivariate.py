"""Multivariate normal random-effects model: multi-arm trials and estimates at several time points.

A trial may report several correlated estimates: the contrasts of two doses against one shared
placebo arm, or the effect at several time windows (immediate, short, medium, long term). This
model keeps every estimate and its known within-trial covariance, and is fitted exactly
(:class:`~ketabayes.inference.exact_multivariate.ExactMultivariateNormal`)::

    y_i ~ N(theta_i, S_i),   theta_ij = beta[g_ij] + delta_ij,
    Var(delta_ij) = tau^2,   Cov(delta_ij, delta_ik) = rho tau^2

* :meth:`MultivariateModel.from_contrasts` (also ``RandomEffectsModel.from_contrasts``): the
  contrasts of :func:`~ketabayes.data.multiarm.multiarm_contrasts` pooled toward one average
  effect ``mu`` with ``rho = 1/2`` (the consistency model for arms sharing a control,
  Higgins & Whitehead 1996; Cochrane Handbook 11.4.3);
* :meth:`MultivariateModel.from_time_points`: one average effect per time window; the
  correlation of a trial's *estimates* across time (``rho_time``, rarely reported) is a
  required, recorded assumption, and the correlation of its *true effects* across time
  (``rho_between``) a stated one. :meth:`MultivariateModel.sensitivity` refits over other values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketabayes.data.validation import as_dataframe, check_not_empty, numeric_column, require_column, study_labels
from ketabayes.errors import DataError, KetabayesError, PriorError
from ketabayes.model._fit_common import (
    Described,
    default_tau_prior_for,
    draw_seed,
    fit_settings,
    make_thresholds,
    prior_entry,
)
from ketabayes.model.priors import Flat, Normal, Prior, parse_prior

__all__ = ["MultivariateModel", "TIME_WINDOWS"]

#: conventional order of time windows (used when the labels are these)
TIME_WINDOWS = ("immediate", "short", "medium", "long")


def _corr(x, name):
    if x is None:
        raise KetabayesError(f"{name} is required: the correlation is an assumption you must state (e.g. "
                             f"{name}=0.5) and vary in a sensitivity analysis")
    try:
        r = float(x)
    except (TypeError, ValueError):
        raise KetabayesError(f"{name} must be a number in [0, 1), got {x!r}") from None
    if not 0.0 <= r < 1.0:
        raise KetabayesError(f"{name} must be in [0, 1), got {x!r}")
    return r


class MultivariateModel(Described):
    """Bayesian multivariate normal random-effects model with known within-trial covariance.

    Build it with :meth:`from_contrasts` (multi-arm trials) or :meth:`from_time_points`.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per estimate: ``study``, ``label`` (arm or time window), ``yi``, ``vi``.
    covariance : numpy.ndarray
        Within-trial covariance of the estimates (block-diagonal over trials), in table order.
    coef : array of int
        Average effect (coefficient) of each estimate.
    coef_names : list of str
        Names of the coefficients (``["all"]`` for one average effect, else the time windows).
    rho : float
        Correlation of a trial's random effects.
    prior_mu, prior_tau : Prior or str, optional
        Prior of every average effect (normal or flat; default flat) and of tau.
    measure : str
    assumptions : dict
        Recorded assumptions (stored with the result).
    """

    def __init__(self, table: pd.DataFrame, covariance, coef, coef_names, *, rho: float,
                 prior_mu: Prior | str | None = None, prior_tau: Prior | str | None = None,
                 measure: str = "GEN", assumptions: dict | None = None, factor: str | None = None):
        self.table = table.reset_index(drop=True)
        self.S = np.asarray(covariance, dtype=float)
        self.coef = np.asarray(coef, dtype=int)
        self.coef_names = [str(c) for c in coef_names]
        self.rho = float(rho)
        self.factor = factor  # "time" for time windows, None for one average effect
        self.measure = (measure or "GEN").upper()
        self.assumptions = dict(assumptions or {})
        self.prior_mu = parse_prior(prior_mu) if prior_mu is not None else Flat()
        if not isinstance(self.prior_mu, Flat) and not (isinstance(self.prior_mu, Normal)
                                                        and not self.prior_mu.truncated):
            raise PriorError(f"the multivariate model takes a normal or flat prior for the average effect(s), "
                             f"got {self.prior_mu}")
        self.yi = self.table["yi"].to_numpy(float)
        self.vi = np.diag(self.S).copy()
        self.trials = self.table["study"].astype(str).tolist()
        self.labels = [f"{s}|{lab}" if factor is None else f"{s}|{factor}={lab}"
                       for s, lab in zip(self.trials, self.table["label"].astype(str))]
        if len(set(self.labels)) != len(self.labels):
            dup = next(x for x in self.labels if self.labels.count(x) > 1)
            raise DataError(f"estimate {dup!r} appears twice", study=dup.split("|")[0])
        if prior_tau is not None:
            self.prior_tau = parse_prior(prior_tau)
            if self.prior_tau.support != "positive":
                raise PriorError(f"prior_tau must be a prior on tau > 0, got {self.prior_tau}")
        else:
            # unit-information default from the trials' sizes (n1i + n2i or ni columns of the table, if any)
            self.prior_tau = default_tau_prior_for(self.measure, self.table, self.vi)
        # construct the engine's checks now, so bad input fails at build time
        from ketabayes.inference.exact_multivariate import _blocks, _check_cov

        _check_cov(self.S, _blocks(self.trials, self.yi.size), self.trials)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_contrasts(cls, contrasts, *, prior_mu=None, prior_tau=None, rho: float = 0.5) -> MultivariateModel:
        """Multi-arm trials: contrasts against a shared control pooled toward one average effect.

        Parameters
        ----------
        contrasts : Contrasts
            From :func:`~ketabayes.data.multiarm.multiarm_contrasts`.
        rho : float, default 0.5
            Correlation of the random effects of two contrasts of one trial; 0.5 is the standard
            consistency assumption (equal heterogeneity of every contrast).

        Examples
        --------
        >>> import pandas as pd, ketabayes as kb
        >>> arms = pd.DataFrame({"study": ["T1"] * 3 + ["T2"] * 2,  # SIMULATED
        ...                      "arm": ["low", "high", "placebo", "high", "placebo"],
        ...                      "mi": [-3.0, -4.0, -1.0, -2.5, -1.5], "sdi": [4.0, 4.0, 4.5, 4.0, 4.0],
        ...                      "ni": [30, 30, 30, 25, 25]})
        >>> c = kb.multiarm_contrasts(arms, "MD", control="placebo")
        >>> res = kb.MultivariateModel.from_contrasts(c, prior_tau="halfnormal(2)").fit(seed=1, draws=100)
        >>> res.target_names
        ['mean', 'predictive', 'T1|low', 'T1|high', 'T2|high']
        """
        tab = contrasts.table
        table = pd.DataFrame({"study": tab["study"].astype(str), "label": tab["arm"].astype(str),
                              "yi": tab["yi"].astype(float), "vi": tab["vi"].astype(float)})
        for c in ("n1i", "n2i"):  # arm sizes: the default prior of tau needs them
            if c in tab.columns:
                table[c] = pd.to_numeric(tab[c], errors="coerce").to_numpy(dtype=float)
        multi = [s for s, n in table["study"].value_counts(sort=False).items() if n > 1]
        measure = str(tab["measure"].iloc[0]) if "measure" in tab else tab.attrs.get("measure", "GEN")
        rho = _corr(rho, "rho")
        return cls(table, contrasts.covariance_matrix(), np.zeros(len(table), int), ["all"], rho=rho,
                   prior_mu=prior_mu, prior_tau=prior_tau, measure=measure,
                   assumptions={"rho": rho, "rho_note": f"correlation {rho:g} of the random effects of contrasts "
                                "sharing a control (consistency model)", "multiarm_trials": multi})

    @classmethod
    def from_effect_sizes(cls, table: pd.DataFrame, *, prior_mu=None, prior_tau=None, rho: float = 0.5,
                          study: str = "study", measure: str | None = None) -> MultivariateModel:
        """An effect-size table whose multi-arm trials keep several contrasts: one average effect.

        ``table`` is any table of ``yi``/``vi`` rows -- parallel trials from
        :func:`~ketabayes.effect_sizes`, crossover trials from :func:`~ketabayes.crossover` --
        in which the contrasts of a multi-arm trial (:func:`~ketabayes.multiarm_contrasts`) are
        rows of one study with the shared control's variance ``vi_control``: two contrasts of one
        trial have covariance ``vi_control``; every other pair of rows is independent. With no
        multi-arm trial this is the normal-normal model.

        Parameters
        ----------
        table : pandas.DataFrame
            Not modified; rows with ``estimable == False`` are an error (leave them out first).
        rho : float, default 0.5
            Correlation of the random effects of two contrasts of one trial (consistency model).

        Examples
        --------
        >>> import pandas as pd, ketabayes as kb
        >>> arms = pd.DataFrame({"study": ["T1"] * 3, "arm": ["low", "high", "placebo"],  # SIMULATED
        ...                      "mi": [-3.0, -4.0, -1.0], "sdi": [4.0, 4.0, 4.5], "ni": [30, 30, 30]})
        >>> two_arm = kb.effect_sizes(pd.DataFrame({"study": ["T2"], "m1i": [-2.5], "sd1i": [4.0], "n1i": [25],
        ...                                         "m2i": [-1.5], "sd2i": [4.0], "n2i": [25]}), "MD")
        >>> table = pd.concat([kb.multiarm_contrasts(arms, "MD", control="placebo").table, two_arm])
        >>> m = kb.MultivariateModel.from_effect_sizes(table, prior_tau="halfnormal(2)")
        >>> m.S[0, 1] == 4.5**2 / 30, m.labels
        (np.True_, ['T1|low', 'T1|high', 'T2|-'])
        """
        from ketabayes.data.validation import validate_yi_vi

        df = as_dataframe(table)
        check_not_empty(df)
        if study not in df.columns:
            raise DataError("the table needs study labels (several rows of one multi-arm trial share its label)",
                            column=study)
        if "estimable" in df.columns and not df["estimable"].astype(bool).all():
            bad = df.loc[~df["estimable"].astype(bool), study].astype(str).iloc[0]
            raise DataError("the effect is not estimable; leave such rows out first", study=bad, column="estimable")
        trials = df[study].astype(str).to_numpy()
        label = (df["arm"].astype(str).where(df["arm"].notna(), "-").to_numpy() if "arm" in df.columns
                 else np.full(len(df), "-"))
        check = df.assign(**{study: [f"{s}|{a}" for s, a in zip(trials, label)]})
        clean = validate_yi_vi(check, yi="yi", vi="vi", study=study)
        out = pd.DataFrame({"study": trials, "label": label, "yi": clean["yi"].to_numpy(float),
                            "vi": clean["vi"].to_numpy(float)})
        for c in ("n1i", "n2i", "ni"):  # trial sizes: the default prior of tau needs them
            if c in df.columns:
                out[c] = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        shared = (pd.to_numeric(df["vi_control"], errors="coerce").to_numpy(float) if "vi_control" in df.columns
                  else np.full(len(df), np.nan))
        S = np.diag(out["vi"].to_numpy())
        multi = []
        for s in dict.fromkeys(trials):
            idx = np.flatnonzero(trials == s)
            if idx.size < 2:
                continue
            cov = shared[idx]
            if not (np.all(np.isfinite(cov)) and np.allclose(cov, cov[0], rtol=1e-12, atol=0.0)):
                raise DataError(f"{idx.size} rows of this study: the contrasts of a multi-arm trial need one "
                                f"shared control variance (column 'vi_control', as multiarm_contrasts() writes it), "
                                f"got {cov.tolist()}", study=s, column="vi_control")
            S[np.ix_(idx, idx)] = cov[0]
            S[idx, idx] = out["vi"].to_numpy()[idx]
            multi.append(s)
        rho = _corr(rho, "rho")
        m = measure or (str(df["measure"].iloc[0]) if "measure" in df.columns else df.attrs.get("measure", "GEN"))
        return cls(out, S, np.zeros(len(out), int), ["all"], rho=rho, prior_mu=prior_mu, prior_tau=prior_tau,
                   measure=m, assumptions={"rho": rho, "rho_note": f"correlation {rho:g} of the random effects of "
                                           "contrasts sharing a control (consistency model)",
                                           "multiarm_trials": multi})

    @classmethod
    def from_time_points(cls, data, *, rho_time: float, rho_between: float = 0.5, time: str = "time",
                         times=None, study: str = "study", yi: str = "yi", vi: str = "vi", sei: str = "sei",
                         prior_mu=None, prior_tau=None, measure: str | None = None) -> MultivariateModel:
        """Estimates at several time windows: one average effect per window.

        Parameters
        ----------
        data : pandas.DataFrame
            One row per trial and time window: ``study``, ``time``, ``yi`` and ``vi`` (or ``sei``).
            Not modified.
        rho_time : float
            REQUIRED ASSUMPTION: correlation of a trial's estimates at two time windows (the same
            patients measured again). ``Cov(y_it, y_is) = rho_time * se_it * se_is``.
        rho_between : float, default 0.5
            Correlation of a trial's true effects at two time windows
            (``theta_it = mu_t + u_i + e_it`` with ``Var(u_i) = rho_between tau^2``); recorded.
        times : sequence of str, optional
            Order of the windows; default ``TIME_WINDOWS`` order when the labels are those, else
            order of appearance.

        Examples
        --------
        >>> import pandas as pd, ketabayes as kb
        >>> d = pd.DataFrame({"study": ["A", "A", "B", "B", "C"], "time": ["short", "long"] * 2 + ["short"],
        ...                   "yi": [-1.0, -0.4, -1.4, -0.2, -0.8], "vi": [0.2, 0.25, 0.3, 0.3, 0.2]})  # SIMULATED
        >>> m = kb.MultivariateModel.from_time_points(d, rho_time=0.5, prior_tau="halfnormal(1)")
        >>> m.coef_names
        ['short', 'long']
        """
        rho_time = _corr(rho_time, "rho_time")
        rho_between = _corr(rho_between, "rho_between")
        df = as_dataframe(data)
        check_not_empty(df)
        labels = study_labels(df, study, generate=False)
        require_column(df, time, purpose="the time window of each estimate")
        tl = [str(t) for t in df[time].tolist()]
        rowlab = [f"{s}|time={t}" for s, t in zip(labels, tl)]
        y = numeric_column(df, yi, rowlab, what="the effect estimate")
        if vi in df.columns:
            v = numeric_column(df, vi, rowlab, what="the sampling variance")
        else:
            require_column(df, sei, purpose="the standard errors (or give vi)")
            v = numeric_column(df, sei, rowlab, what="the standard error") ** 2
        bad = np.flatnonzero(~(v > 0))
        if bad.size:
            raise DataError(f"sampling variance must be positive, got {v[bad[0]]!r} (time {tl[bad[0]]})",
                            study=labels[bad[0]], column=vi)
        present = list(dict.fromkeys(tl))
        if times is None:
            times = [t for t in TIME_WINDOWS if t in present] if set(present) <= set(TIME_WINDOWS) else present
        times = [str(t) for t in times]
        unknown = [t for t in present if t not in times]
        if unknown:
            raise DataError(f"time window {unknown[0]!r} is not in times={times}", column=time)
        empty = [t for t in times if t not in present]
        if empty:
            raise DataError(f"time window(s) {empty} have no estimates; drop them from times=", column=time)
        order = np.lexsort((np.array([times.index(t) for t in tl]), pd.factorize(pd.Series(labels))[0]))
        table = pd.DataFrame({"study": np.array(labels)[order], "label": np.array(tl)[order],
                              "yi": y[order], "vi": v[order]})
        for c in ("n1i", "n2i", "ni"):  # trial sizes: the default prior of tau needs them
            if c in df.columns:
                table[c] = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)[order]
        se = np.sqrt(table["vi"].to_numpy())
        same = table["study"].to_numpy()[:, None] == table["study"].to_numpy()[None, :]
        S = np.where(same, rho_time * np.outer(se, se), 0.0)
        np.fill_diagonal(S, table["vi"].to_numpy())
        coef = np.array([times.index(t) for t in table["label"]])
        note = (f"within-trial correlation of estimates across time rho_time = {rho_time:g} (ASSUMED; rarely "
                f"reported); correlation of true effects across time rho_between = {rho_between:g}")
        return cls(table, S, coef, times, rho=rho_between, prior_mu=prior_mu, prior_tau=prior_tau,
                   measure=measure or df.attrs.get("measure", "GEN"), factor="time",
                   assumptions={"rho_time": rho_time, "rho_between": rho_between, "note": note,
                                "time_data": {"study": labels, "time": tl, "yi": y.tolist(), "vi": v.tolist(),
                                              "times": times}})

    # ------------------------------------------------------------------
    @property
    def k(self) -> int:
        return len(dict.fromkeys(self.trials))

    def describe(self) -> str:
        """Plain-text statement of the model, its priors and its assumptions."""
        what = ("one average effect per time window (" + ", ".join(self.coef_names) + ")"
                if self.factor else "one average effect mu")
        lines = [f"Multivariate normal random-effects model: {self.yi.size} estimates from {self.k} trials, "
                 f"measure {self.measure}, {what}",
                 f"  y_i ~ N(theta_i, S_i) (S_i known), Var(delta_ij) = tau^2, Cov(delta_ij, delta_ik) = "
                 f"{self.rho:g} tau^2",
                 f"  prior mu:  {self.prior_mu.describe()}", f"  prior tau: {self.prior_tau.describe()}"]
        note = self.assumptions.get("note") or self.assumptions.get("rho_note")
        if note:
            lines.append(f"  assumption: {note}")
        return "\n".join(lines)

    def data_hash(self) -> str:
        from ketabayes.provenance import data_hash

        return data_hash(self.yi, self.S.ravel(), labels=self.labels, extra=f"{self.measure}|{self.rho!r}")

    def engine(self):
        """The exact engine (:class:`~ketabayes.inference.exact_multivariate.ExactMultivariateNormal`)."""
        from ketabayes.inference.exact_multivariate import ExactMultivariateNormal

        return ExactMultivariateNormal(self.yi, self.S, self.trials, self.coef, self.prior_mu, self.prior_tau,
                                       rho=self.rho, labels=self.trials)

    def fit(self, method: str = "exact", *, mcid: float | None = None, benefit: str = "lower",
            harm: float | None = None, seed: int | None = None, draws: int = 1000, chains: int = 4,
            frequentist: bool = True):
        """Fit exactly (quadrature over tau; the only engine of this model).

        Returns
        -------
        MultivariateResult
            Targets ``mean``, ``predictive`` and ``<study>|<arm>`` (one average effect), or
            ``mean|time=<t>``, ``predictive|time=<t>`` and ``<study>|time=<t>`` (time windows).
        """
        from ketabayes.model._fit_common import draws_tree
        from ketabayes.result.multivariate_result import MultivariateResult

        if method != "exact":
            raise KetabayesError(f"the multivariate model is fitted exactly only (method='exact'), got {method!r}")
        seed = draw_seed(seed)
        th = make_thresholds(mcid, self.measure, benefit, harm)
        settings = fit_settings("multivariate", "exact", self.measure,
                                priors={"prior_mu": prior_entry(self.prior_mu, short=True),
                                        "prior_tau": prior_entry(self.prior_tau)},
                                thresholds=th, seed=seed, draws=draws, chains=chains, excluded=[],
                                data_hash=self.data_hash(),
                                structure={"rho": self.rho, "factor": self.factor, "coef_names": self.coef_names,
                                           "assumptions": {k: v for k, v in self.assumptions.items()
                                                           if k != "time_data"}})
        exact = self.engine()
        settings["engine_settings"] = exact.settings.to_dict()
        d = exact.sample(chains * draws, np.random.default_rng(seed))
        sh = (chains, draws)
        tree = draws_tree(
            {"posterior": {"beta": d["beta"].reshape(*sh, -1), "tau": d["tau"].reshape(sh),
                           "theta": d["theta"].reshape(*sh, -1), "theta_new": d["theta_new"].reshape(*sh, -1)},
             "observed_data": {"y": self.yi},
             "constant_data": {"S": self.S, "trial": np.array(self.trials, dtype=str),
                               "coef": self.coef.astype(np.int64)}},
            {"beta": ["coefficient"], "theta_new": ["coefficient"], "theta": ["estimate"], "y": ["estimate"],
             "S": ["estimate", "estimate_col"], "trial": ["estimate"], "coef": ["estimate"]},
            {"coefficient": self.coef_names, "estimate": self.labels, "estimate_col": self.labels})
        from ketabayes.inference.arviz_groups_multi import add_multivariate_groups

        tree = add_multivariate_groups(tree, self.yi, self.S, self.trials, self.coef, self.rho, self.prior_mu,
                                       exact.prior_tau, seed=seed)
        freq = None
        if frequentist:
            from ketabayes.inference.exact_multivariate import rma_mv_cs

            freq = {m: rma_mv_cs(self.yi, self.S, self.trials, self.coef, rho=self.rho, method=m).to_dict()
                    for m in ("REML", "ML")}
        return MultivariateResult(tree, settings, exact=exact, frequentist=freq)

    def sensitivity(self, *, rho_time=None, rho_between=None, rho=None, mcid: float, benefit: str = "lower",
                    harm: float | None = None) -> pd.DataFrame:
        """Decision tables refitted over other values of the correlation assumptions.

        Parameters
        ----------
        rho_time, rho_between : sequence of float, optional
            Values to try (time-point models; default: the model's own value).
        rho : sequence of float, optional
            Values of the random-effects correlation (multi-arm models).
        mcid, benefit, harm
            Decision thresholds.

        Returns
        -------
        pandas.DataFrame
            The decision tables stacked, with the assumption values as columns.
        """
        rows = []
        if self.factor == "time":
            td = self.assumptions["time_data"]
            data = pd.DataFrame({k: td[k] for k in ("study", "time", "yi", "vi")})
            for rt in (rho_time if rho_time is not None else [self.assumptions["rho_time"]]):
                for rb in (rho_between if rho_between is not None else [self.assumptions["rho_between"]]):
                    m = MultivariateModel.from_time_points(data, rho_time=rt, rho_between=rb, times=td["times"],
                                                           prior_mu=self.prior_mu, prior_tau=self.prior_tau,
                                                           measure=self.measure)
                    tab = m.fit(mcid=mcid, benefit=benefit, harm=harm, seed=0, draws=10, chains=1,
                                frequentist=False).decision_table()
                    rows.append(tab.assign(rho_time=rt, rho_between=rb))
        else:
            for r in (rho if rho is not None else [self.rho]):
                m = MultivariateModel(self.table, self.S, self.coef, self.coef_names, rho=_corr(r, "rho"),
                                      prior_mu=self.prior_mu, prior_tau=self.prior_tau, measure=self.measure,
                                      assumptions={**self.assumptions, "rho": r})
                tab = m.fit(mcid=mcid, benefit=benefit, harm=harm, seed=0, draws=10, chains=1,
                            frequentist=False).decision_table()
                rows.append(tab.assign(rho=r))
        return pd.concat(rows, ignore_index=True)
