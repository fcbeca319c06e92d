"""Result of a hierarchical (drug x condition) or binomial model: targets and decision tables.

:class:`HierarchicalResult` is what :meth:`HierarchicalModel.fit
<ketabayes.model.hierarchical.HierarchicalModel.fit>` and :meth:`BinomialModel.fit
<ketabayes.model.binomial.BinomialModel.fit>` return. Every target (overall mean,
each drug, each condition, each drug x condition cell -- with or without trials --
and new-trial predictions) has a posterior
:class:`~ketabayes.result.marginals.Marginal`: an exact mixture of normals for
the exact engine, draws for NUTS. Settings (priors, thresholds, seed, versions,
data hash) travel in the tree's root attributes, as for
:class:`~ketabayes.result.result.MetaResult`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import xarray as xr

from ketabayes import dims
from ketabayes.errors import KetabayesError
from ketabayes.result.base import SETTINGS_ATTR as _ATTR
from ketabayes.result.base import ResultBase
from ketabayes.result.decision import RATIO_MEASURES, decision_probabilities
from ketabayes.result.marginals import DrawsMarginal, Marginal
from ketabayes.result.provenance import to_json

__all__ = ["TABLE_COLUMNS", "HierarchicalResult", "load_hierarchical_result"]

TABLE_COLUMNS = ["target", "kind", "observed", "n_trials", "mean", "sd", "q025", "q50", "q975",
                 "p_benefit", "p_trivial", "p_harm", "p_any_benefit", "exact"]


class HierarchicalResult(ResultBase):
    """Posterior of a hierarchical meta-analysis with a decision table per drug, condition and cell.

    Do not construct directly: use ``HierarchicalModel.fit`` / ``BinomialModel.fit``
    or :func:`load_hierarchical_result`.

    Attributes
    ----------
    tree : xarray.DataTree
        ``posterior`` with ``mu``, ``tau``, ``sd_<group>``, ``<group>_effect[<group>]``,
        ``gamma[moderator]`` and ``effect[target]`` (every reported target);
        ``observed_data``, ``constant_data`` and, for NUTS, ``sample_stats``.
    settings : dict
        Same keys as :attr:`MetaResult.settings <ketabayes.result.result.MetaResult.settings>`
        plus the model structure (``by``, ``moderators``, ``interaction``, ``nest``).
    targets : list of Target
    exact : ExactHierarchical or None
    diagnostics : Diagnostics or None
    """

    def __init__(self, tree: xr.DataTree, settings: dict, *, targets, exact=None, diagnostics=None, model=None):
        super().__init__(tree, settings, exact=exact, diagnostics=diagnostics)
        self.targets = list(targets)
        self.model = model
        self._index = {t.name: i for i, t in enumerate(self.targets)}
        self._store_settings()

    # ------------------------------------------------------------------ basics
    @property
    def by(self) -> list[str]:
        return list(self.settings.get("by", []))

    @property
    def components(self) -> list[str]:
        return [dims.TAU] + [v for v in self.tree["posterior"].data_vars if v.startswith("sd_")]

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    # ------------------------------------------------------------------ marginals
    def marginal(self, target: str = "mean") -> Marginal:
        """Posterior of one target.

        Parameters
        ----------
        target : str
            ``"mean"``, ``"predictive"``, ``"drug=ketamine"``,
            ``"drug=ketamine|condition=CRPS"``, ``"predictive|drug=ketamine|condition=CRPS"``,
            ``"moderator=<name>"``, or a variance component (``"tau"``, ``"sd_drug"``;
            from draws).
        """
        if target in self._index:
            i = self._index[target]
            if self.exact is not None:
                return self.exact.marginal(i)
            return DrawsMarginal(self.tree["posterior"]["effect"].isel({dims.TARGET: i}).values)
        if target in self.components:
            return DrawsMarginal(self.tree["posterior"][target].values)
        from ketabayes.data.validation import closest

        best = closest(target, self.target_names + self.components)
        raise KetabayesError(f"unknown target {target!r}" + (f"; did you mean {best!r}?" if best else "")
                             + f" Targets: {', '.join(self.target_names[:8])}"
                             + (", ..." if len(self.targets) > 8 else ""))

    # ------------------------------------------------------------------ tables
    def _rows(self, targets, prob, th):
        a = (1.0 - prob) / 2.0
        names = self.target_names if targets is None else list(targets)
        level_cols = self._level_columns()
        rows = []
        for name in names:
            m = self.marginal(name)
            t = self.targets[self._index[name]] if name in self._index else None
            q = np.asarray(m.ppf(np.array([a, 0.5, 1.0 - a])), dtype=float)
            row = {"target": name}
            for c in level_cols:
                row[c] = t.levels.get(c) if t is not None else None
            row.update(kind=t.kind if t else "scale", observed=bool(t.observed) if t else True,
                       n_trials=int(t.n_trials) if t else 0, mean=m.mean, sd=m.sd, q025=q[0], q50=q[1], q975=q[2])
            if th is not None:
                row.update(decision_probabilities(m, th))
            row["exact"] = bool(m.exact)
            rows.append(row)
        df = pd.DataFrame(rows)
        if prob != 0.95:
            df = df.rename(columns={"q025": f"q{a * 1000:03.0f}", "q975": f"q{(1 - a) * 1000:03.0f}"})
        return df

    def _level_columns(self) -> list[str]:
        return self.by + [p for p in self.settings.get("nest", {}).values()]

    def decision_table(self, mcid: float | None = None, benefit: str | None = None, harm: float | None = None,
                       targets=None, prob: float = 0.95) -> pd.DataFrame:
        """One tidy row per target with the probabilities of benefit, practically no effect and harm.

        Parameters
        ----------
        mcid : float, optional
            Minimal clinically important difference (a ratio for OR/RR); default: the one given at fit time.
        benefit : {"lower", "higher"}, optional
        harm : float, optional
            Harm threshold, if different from the MCID.
        targets : list of str, optional
            Default: every target except moderator slopes (mean, predictive, each group,
            each cell, each cell's predictive).
        prob : float
            Probability of the equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            Columns ``target``, one column per grouping (the level, or None), ``kind``
            (mean / group / cell / predictive), ``observed`` (False for cells without
            trials), ``n_trials``, ``mean, sd, q025, q50, q975, p_benefit, p_trivial,
            p_harm, p_any_benefit, exact``; analysis scale (log scale for OR/RR).
        """
        th = self._thresholds(mcid, benefit, harm)
        if targets is None:
            targets = [t.name for t in self.targets if t.kind != "moderator"]
        df = self._rows(targets, prob, th)
        df.attrs.update(thresholds=th.to_dict(), thresholds_text=th.describe(self.measure),
                        prior_mu=self.settings["prior_mu"], prior_tau=self.settings["prior_tau"],
                        prior_sd=self.settings["prior_sd"], measure=self.measure, engine=self.engine,
                        predictive_definition="'predictive': a new trial of a new drug in a new condition "
                                              "(mu + new group effects + e_new); 'predictive|<cell>': a new "
                                              "trial in that cell (cell effect + e_new)")
        return df

    def summary(self, prob: float = 0.95) -> pd.DataFrame:
        """Mean, sd and equal-tailed interval of the variance components and every target.

        Exact mixtures for the targets with the exact engine; variance components from the
        quadrature distribution (exact engine) or draws (NUTS, with R-hat and bulk ESS).
        """
        rows = self._rows(None, prob, None).set_index("target")
        lo, hi = rows.columns[rows.columns.get_loc("mean") + 2], rows.columns[rows.columns.get_loc("mean") + 4]
        cols = ["kind", "observed", "n_trials", "mean", "sd", lo, "q50", hi]
        rows = rows[cols]
        comp = self.scale_summary(prob)
        comp.columns = ["mean", "sd", lo, "q50", hi]
        comp.insert(0, "kind", "scale")
        comp.insert(1, "observed", True)
        comp.insert(2, "n_trials", rows["n_trials"].iloc[0])
        out = pd.concat([comp, rows])
        if self.engine != "exact":
            import arviz as az

            var_names = ["effect", *self.components]
            s = az.summary(self.tree, var_names=var_names, ci_prob=prob, ci_kind="eti", round_to="none")
            idx = {f"effect[{n}]": n for n in self.target_names}
            s.index = [idx.get(i, i) for i in s.index]
            out["r_hat"] = s["r_hat"].reindex(out.index).to_numpy()
            out["ess_bulk"] = s["ess_bulk"].reindex(out.index).to_numpy()
        return out

    def scale_summary(self, prob: float = 0.95) -> pd.DataFrame:
        """Posterior of tau and of every group's SD."""
        a = (1.0 - prob) / 2.0
        qs = (a, 0.5, 1.0 - a)
        rows = {}
        for c, name in enumerate(self.components):
            if self.exact is not None:
                s = self.exact.component_summary(c, qs)
                rows[name] = [s["mean"], s["sd"], s["q025"], s["q50"], s["q975"]]
            else:
                x = self.tree["posterior"][name].values.ravel()
                rows[name] = [x.mean(), x.std(ddof=1), *np.quantile(x, qs)]
        return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "sd", "q025", "q50", "q975"])

    def absolute_effects(self, baseline_risk: float | None = None, targets=None, prob: float = 0.95) -> pd.DataFrame:
        """OR, RR and RD of each target at a baseline (control) risk, by posterior transformation.

        For a log odds ratio ``theta`` and control risk ``p0``: ``p1 = expit(logit(p0) + theta)``,
        ``RR = p1 / p0``, ``RD = p1 - p0``. Each transformation is monotone in ``theta``,
        so the quantiles are the transformed quantiles of ``theta`` (exact for the exact engine);
        means are computed by Gauss-Hermite quadrature over mixtures or from draws.

        Parameters
        ----------
        baseline_risk : float, optional
            Control-arm risk; default the one stored at fit time (median observed control risk).
        """
        if self.measure != "OR":
            raise KetabayesError(f"absolute effects need a log-odds-ratio analysis; this one is {self.measure}")
        p0 = baseline_risk if baseline_risk is not None else self.settings.get("baseline_risk")
        if p0 is None or not (0.0 < p0 < 1.0):
            raise KetabayesError(f"give a baseline risk between 0 and 1 (baseline_risk=...), got {p0!r}")
        a = (1.0 - prob) / 2.0
        qs = np.array([a, 0.5, 1.0 - a])
        l0 = math.log(p0 / (1.0 - p0))
        names = [t.name for t in self.targets if t.kind != "moderator"] if targets is None else list(targets)
        rows = []
        x, w = np.polynomial.hermite_e.hermegauss(40)
        w = w / w.sum()
        for name in names:
            m = self.marginal(name)
            q = np.asarray(m.ppf(qs), dtype=float)
            if hasattr(m, "weights"):
                th = (m.means[:, None] + m.sds[:, None] * x[None, :])
                wt = m.weights[:, None] * w[None, :]
            else:
                th, wt = m.draws, np.full(m.draws.size, 1.0 / m.draws.size)
            row = {"target": name, "baseline_risk": p0}
            for lab, f in (("OR", lambda t: np.exp(t)), ("RR", lambda t: 1.0 / (1.0 + np.exp(-(l0 + t))) / p0),
                           ("RD", lambda t: 1.0 / (1.0 + np.exp(-(l0 + t))) - p0)):
                fq = f(q)
                row.update({f"{lab}_mean": float(np.sum(wt * f(th))), f"{lab}_q025": fq[0], f"{lab}_q50": fq[1],
                            f"{lab}_q975": fq[2]})
            rows.append(row)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ output
    def to_dict(self, mcid=None, benefit=None, harm=None) -> dict:
        """Machine-readable result with the same top-level keys as ``MetaResult.to_dict``."""
        out = {"measure": self.measure, "scale": "log" if self.measure in RATIO_MEASURES else "identity"}
        th = self._thresholds(mcid, benefit, harm, required=False)
        table = (self.decision_table(th.mcid, th.benefit, th.harm) if th is not None
                 else self._rows([t.name for t in self.targets if t.kind != "moderator"], 0.95, None))
        out["estimates"] = [{k: (bool(v) if k in ("exact", "observed") else v) for k, v in r.items()}
                            for r in table.to_dict(orient="records")]
        scales = self.scale_summary()
        out["tau"] = {k: scales.loc[dims.TAU, k] for k in ("mean", "q025", "q50", "q975")}
        out["scales"] = {n: {k: scales.loc[n, k] for k in ("mean", "sd", "q025", "q50", "q975")}
                         for n in scales.index}
        out["diagnostics"] = self.diagnostics.to_dict() if self.diagnostics is not None else {
            "engine": "exact", "note": "independent draws from the exact posterior; no MCMC diagnostics apply"}
        out["settings"] = dict(self.settings)
        if th is not None:
            out["settings"]["thresholds"] = th.to_dict()
        return json.loads(to_json(out))

    def __repr__(self) -> str:
        s = self.settings
        n = self.tree["observed_data"].sizes.get(dims.STUDY, 0)
        lines = [(f"<HierarchicalResult: {s.get('model')}, {n} trials, by {self.by}, measure {self.measure}, "
                 f"engine {self.engine}>"), f"  prior mu:  {s['prior_mu']['text']}",
                 f"  prior tau: {s['prior_tau']['text']}"]
        for k, v in s.get("prior_sd", {}).items():
            lines.append(f"  prior sd[{k}]: {v['text']}")
        if self.diagnostics is not None:
            lines.append(f"  diagnostics: {self.diagnostics}")
        lines.append(f"  data: {s['data_hash']}, seed {s['seed']}")
        return "\n".join(lines)


def load_hierarchical_result(path) -> HierarchicalResult:
    """Load a result saved with :meth:`HierarchicalResult.to_netcdf`.

    The model structure is rebuilt from the stored data and settings; the exact engine
    is re-run (deterministic, under a second), so exact summaries survive the round-trip.
    """
    from ketabayes.inference.diagnostics import Diagnostics

    tree = xr.open_datatree(path, engine="netcdf4").load()
    settings = json.loads(tree.attrs[_ATTR])
    diag = settings.pop("diagnostics", None)
    diagnostics = Diagnostics(**{k: v for k, v in diag.items() if k != "ok"}) if diag else None
    if settings.get("model") == "binomial":
        from ketabayes.model.binomial import model_from_tree
    else:
        from ketabayes.model.hierarchical import model_from_tree
    model = model_from_tree(tree, settings)
    exact = None
    if settings["engine"] == "exact":
        from ketabayes.inference.exact_hierarchical import GridSettings

        exact = model._exact(GridSettings.from_dict(settings["engine_settings"]))
    return HierarchicalResult(tree, settings, targets=model.design.targets, exact=exact, diagnostics=diagnostics,
                              model=model)
