"""Result of a hierarchical (drug x condition) or binomial model: targets and decision tables.

:class:`HierarchicalResult` is what :meth:`HierarchicalModel.fit
<ketabayes.model.hierarchical.HierarchicalModel.fit>` and :meth:`BinomialModel.fit
<ketabayes.model.binomial.BinomialModel.fit>` return. Every target (overall mean,
each drug, each condition, each drug x condition cell -- with or without trials --
and new-trial predictions) has a posterior
:class:`~ketabayes.marginals.Marginal`: an exact mixture of normals for
the exact engine, draws for NUTS. Settings (priors, thresholds, seed, versions,
data hash) travel in the tree's root attributes, as for
:class:`~ketabayes.result.result.MetaResult`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from ketabayes import dims
from ketabayes.errors import KetabayesError
from ketabayes.marginals import CdfMarginal, DrawsMarginal, Marginal
from ketabayes.result.base import ResultBase, TargetInfo

__all__ = ["HierarchicalResult", "load_hierarchical_result", "target_constants"]


class HierarchicalResult(ResultBase):
    """Posterior of a hierarchical meta-analysis with a decision table per drug, condition and cell.

    Do not construct directly: use ``HierarchicalModel.fit`` / ``BinomialModel.fit`` or
    :func:`~ketabayes.result.io.load_result`. Follows the one result contract of
    :class:`~ketabayes.result.base.ResultBase`.

    Attributes
    ----------
    tree : xarray.DataTree
        ``posterior`` with ``mu``, ``tau``, ``sd_<group>``, ``<group>_effect[<group>]``,
        ``gamma[moderator]`` and ``effect[target]`` (every reported target);
        ``observed_data``, ``constant_data`` (data, grouping columns, design matrices and
        target definitions) and, for NUTS, ``sample_stats``.
    settings : dict
        Model type, priors, thresholds, engine settings, seed, versions, data hash, and the
        model structure (``by``, ``moderators``, ``interaction``, ``nest``).
    exact : ExactHierarchical or None
    diagnostics : Diagnostics or None
    """

    def __init__(self, tree: xr.DataTree, settings: dict, *, targets, exact=None, diagnostics=None, model=None):
        super().__init__(tree, settings, exact=exact, diagnostics=diagnostics)
        self._targets = [TargetInfo(t.name, t.kind, dict(t.levels), bool(t.observed), int(t.n_trials))
                         for t in targets]
        self.model = model
        self._index = {t.name: i for i, t in enumerate(self._targets)}
        self._store_settings()

    # ------------------------------------------------------------------ the contract
    @property
    def targets(self) -> list[TargetInfo]:
        return self._targets

    @property
    def by(self) -> list[str]:
        return list(self.settings.get("by", []))

    @property
    def components(self) -> list[str]:
        return [dims.TAU] + [v for v in self.tree["posterior"].data_vars if str(v).startswith("sd_")]

    @property
    def scale_names(self) -> list[str]:
        return self.components

    def _level_columns(self) -> list[str]:
        return self.by + [p for p in self.settings.get("nest", {}).values()]

    def _marginal(self, name: str) -> Marginal | None:
        if name in self._index:
            i = self._index[name]
            if self.exact is not None:
                return self.exact.marginal(i)
            return DrawsMarginal(self.tree["posterior"]["effect"].isel({dims.TARGET: i}).values)
        if name in self.components:
            return self._component_marginal(name)
        return None

    def _component_marginal(self, name: str) -> Marginal:
        """Exact posterior of a variance component when the exact engine ran, else its draws."""
        e, c = self.exact, self.components.index(name)
        if e is None:
            return DrawsMarginal(self.tree["posterior"][name].values)
        if hasattr(e, "component_marginal"):
            return e.component_marginal(c)
        cdf = ((lambda x: e.component_cdf(c, x)) if hasattr(e, "component_cdf")
               else (e.tau_cdf if c == 0 and hasattr(e, "tau_cdf") else None))
        if cdf is None:  # pragma: no cover - every exact engine has a CDF of its components
            return DrawsMarginal(self.tree["posterior"][name].values)
        s = e.component_summary(c)
        return CdfMarginal(cdf, s["mean"], s["sd"], lower=0.0)

    def _scale_stats(self, name: str, qs) -> list[float]:
        if self.exact is not None:
            s = self.exact.component_summary(self.components.index(name), qs)
            return [s["mean"], s["sd"], s["q025"], s["q50"], s["q975"]]
        x = self.tree["posterior"][name].values.ravel()
        return [float(x.mean()), float(x.std(ddof=1)), *np.quantile(x, qs)]

    def _diagnostic_var(self, name: str):
        return ("effect", {dims.TARGET: name}) if name in self._index else None

    def _default_targets(self) -> list[str]:
        return [t.name for t in self._targets if t.kind not in ("moderator", "study")]

    def decision_table(self, mcid: float | None = None, benefit: str | None = None, harm: float | None = None,
                       targets=None, prob: float = 0.95, scale: str | None = None) -> pd.DataFrame:
        df = super().decision_table(mcid, benefit, harm, targets=targets, prob=prob, scale=scale)
        df.attrs["predictive_definition"] = (
            "'predictive': a new trial of a new drug in a new condition (mu + new group effects + e_new); "
            "'predictive|<cell>': a new trial in that cell (cell effect + e_new)")
        return df

    decision_table.__doc__ = ResultBase.decision_table.__doc__

    def scale_summary(self, prob: float = 0.95) -> pd.DataFrame:
        """Posterior of tau and of every group's SD (rows of :meth:`summary` with ``kind == "scale"``)."""
        s = self.summary(prob, targets=[])
        return s[s["kind"] == "scale"].reset_index(drop=True)

    @classmethod
    def _from_tree(cls, tree, settings, diagnostics):
        """Rebuild from a saved tree: targets from ``constant_data``, the exact engine re-run from stored arrays."""
        const = tree["constant_data"].to_dataset()
        names = [str(t) for t in const[dims.TARGET].values]
        level_cols = list(settings.get("by", [])) + list(settings.get("nest", {}).values())
        targets = []
        for i, n in enumerate(names):
            levels = {}
            for c in level_cols:
                v = str(const[f"target_level_{c}"].values[i])
                levels[c] = v if v != "" else None
            targets.append(TargetInfo(n, str(const["target_kind"].values[i]), levels,
                                      bool(const["target_observed"].values[i]),
                                      int(const["target_n_trials"].values[i])))
        exact = None
        if settings["engine"] == "exact":
            from ketabayes.inference.restore import exact_binomial, exact_hierarchical

            exact = (exact_binomial if settings.get("model") == "binomial" else exact_hierarchical)(tree, settings)
        return cls(tree, settings, targets=targets, exact=exact, diagnostics=diagnostics)

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
        names = [t.name for t in self.targets if t.kind not in ("moderator", "study")] if targets is None else list(targets)
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
            row = {"target": name, "baseline_risk": p0, "ci_prob": prob}
            for lab, f in (("OR", lambda t: np.exp(t)), ("RR", lambda t: 1.0 / (1.0 + np.exp(-(l0 + t))) / p0),
                           ("RD", lambda t: 1.0 / (1.0 + np.exp(-(l0 + t))) - p0)):
                fq = f(q)
                row.update({f"{lab}_mean": float(np.sum(wt * f(th))), f"{lab}_median": fq[1], f"{lab}_ci_low": fq[0],
                            f"{lab}_ci_high": fq[2]})
            rows.append(row)
        return pd.DataFrame(rows)

    def _extra_dict(self) -> dict:
        return {"structure": {k: self.settings.get(k) for k in ("by", "moderators", "interaction", "nest")}}


def target_constants(targets, level_cols) -> dict:
    """``constant_data`` entries describing each target (kind, levels, observed, n_trials) for the loader."""
    out = {"target_kind": ((dims.TARGET,), np.array([t.kind for t in targets], dtype=str)),
           "target_observed": ((dims.TARGET,), np.array([bool(t.observed) for t in targets])),
           "target_n_trials": ((dims.TARGET,), np.array([int(t.n_trials) for t in targets], dtype=np.int64))}
    for c in level_cols:
        out[f"target_level_{c}"] = ((dims.TARGET,), np.array(
            ["" if t.levels.get(c) is None else str(t.levels.get(c)) for t in targets], dtype=str))
    return out


def load_hierarchical_result(path):
    """Load a result file: the same as :func:`ketabayes.load_result` (which reads any result)."""
    from ketabayes.result.io import load_result

    return load_result(path)
