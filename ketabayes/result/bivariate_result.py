"""The result of a bivariate (benefit and harm) meta-analysis.

:class:`BivariateResult` follows the one result contract
(:class:`~ketabayes.result.base.ResultBase`) with targets ``mean|outcome=<label>`` and
``predictive|outcome=<label>`` for each outcome and the scale parameters
``tau|outcome=<label>`` and ``rho_between``. Each outcome keeps its own measure and thresholds
(the efficacy MCID, the harm threshold), so every table row carries the columns that define it.
On top of the contract it answers the joint questions: :meth:`joint_table` (probability of a
benefit beyond the MCID *and* harm below its threshold, and the other quadrants) and
:meth:`net_benefit` (efficacy gain minus a stated weight times the harm increase, over a range of
weights). Everything is exact (mixtures of bivariate normals over the quadrature nodes).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import special

from ketabayes import dims
from ketabayes.decision import RATIO_MEASURES, Thresholds, benefit_curve, decision_probabilities
from ketabayes.errors import KetabayesError
from ketabayes.marginals import Marginal, MixtureMarginal
from ketabayes.result.base import ResultBase, TargetInfo

__all__ = ["BivariateResult", "bivariate_tree"]

OUTCOME = "outcome"
_KINDS = ("mean", "predictive")


def bivariate_tree(exact, studies, outcomes, seed, chains, draws):
    """DataTree of a bivariate fit: draws from the exact posterior, the data and the correlations."""
    import arviz as az

    d = exact.sample(chains * draws, np.random.default_rng(seed))
    shape = (chains, draws)
    posterior = {"mu": d["mean"].reshape(*shape, 2), "theta_new": d["predictive"].reshape(*shape, 2),
                 "tau": np.stack([d["tau1"], d["tau2"]], -1).reshape(*shape, 2),
                 "rho_between": d["rho"].reshape(shape)}
    return az.from_dict(
        {"posterior": posterior, "observed_data": {"y": exact.y},
         "constant_data": {"vi": exact.v, "rho_within": exact.rw}},
        dims={"mu": [OUTCOME], "theta_new": [OUTCOME], "tau": [OUTCOME], "y": [dims.STUDY, OUTCOME],
              "vi": [dims.STUDY, OUTCOME], "rho_within": [dims.STUDY]},
        coords={dims.STUDY: list(studies), OUTCOME: list(outcomes)})


class BivariateResult(ResultBase):
    """Joint posterior of an efficacy and a harm outcome.

    Do not construct directly: use :meth:`~ketabayes.model.bivariate.BivariateModel.fit` or
    :func:`~ketabayes.result.io.load_result`.
    """

    def __init__(self, tree, settings, *, exact=None, diagnostics=None):
        super().__init__(tree, settings, exact=exact, diagnostics=diagnostics)
        self._store_settings()

    # ------------------------------------------------------------------ outcomes
    @property
    def outcomes(self) -> list[str]:
        return list(self.settings["outcomes"])

    @property
    def measures(self) -> list[str]:
        return list(self.settings["measures"])

    def _j(self, outcome: str) -> int:
        if outcome not in self.outcomes:
            raise KetabayesError(f"unknown outcome {outcome!r}; outcomes: {', '.join(self.outcomes)}")
        return self.outcomes.index(outcome)

    def outcome_thresholds(self, outcome: str) -> Thresholds | None:
        d = self.settings.get("thresholds_by_outcome", {}).get(outcome)
        return Thresholds.from_dict(d) if d else None

    @property
    def assumptions(self) -> list[str]:
        return list(self.settings.get("assumptions", []))

    # ------------------------------------------------------------------ the contract
    @property
    def targets(self) -> list[TargetInfo]:
        y = self.tree["observed_data"]["y"].values
        n = np.isfinite(y).sum(0)
        return [TargetInfo(f"{k}|outcome={o}", k, levels={OUTCOME: o}, n_trials=int(n[j]))
                for k in _KINDS for j, o in enumerate(self.outcomes)]

    @property
    def scale_names(self) -> list[str]:
        return [] if self.settings.get("fixed") else [f"tau|outcome={o}" for o in self.outcomes] + ["rho_between"]

    def _parse(self, name: str):
        if "|outcome=" in name:
            kind, o = name.split("|outcome=", 1)
            if o in self.outcomes and kind in (*_KINDS, "tau"):
                return kind, self._j(o)
        return None

    def _marginal(self, name: str) -> Marginal | None:
        if name == "rho_between" and not self.settings.get("fixed"):
            return self.exact.param_marginal("rho")
        p = self._parse(name)
        if p is None:
            return None
        kind, j = p
        if kind == "tau":
            return None if self.settings.get("fixed") else self.exact.param_marginal(f"tau{j + 1}")
        cache = self.__dict__.setdefault("_marginal_cache", {})
        if name not in cache:
            m = self.exact.marginal(kind, j)
            cache[name] = _CachedMixture(m.weights, m.means, m.sds)
        return cache[name]

    def _scale_stats(self, name: str, qs) -> list[float]:
        key = "rho" if name == "rho_between" else f"tau{self._parse(name)[1] + 1}"
        return self.exact.param_stats(key, qs)

    def _level_columns(self) -> list[str]:
        return [OUTCOME]

    def _default_targets(self) -> list[str]:
        return [t.name for t in self.targets]

    # ------------------------------------------------------------------ per-outcome scale and thresholds
    def _resolve_scale(self, scale):
        if scale is not None and scale not in ("identity", "log", "ratio"):
            raise KetabayesError(f"scale must be one of identity, log, ratio, got {scale!r}")
        return scale

    def _outcome_scale(self, j: int, scale) -> str:
        ratio = self.measures[j] in RATIO_MEASURES
        if scale is None or scale == "identity":
            return "log" if ratio else "identity"
        return scale if ratio else "identity"

    def _table(self, targets, prob, th, scale):
        if not 0.0 < prob < 1.0:
            raise KetabayesError(f"prob must be between 0 and 1, got {prob!r}")
        rows = []
        for name in targets:
            p = self._parse(name)
            if p is None or p[0] == "tau":
                self.marginal(name)  # raises the helpful error for unknown names
                raise KetabayesError(f"{name!r} is a scale parameter: see summary()")
            kind, j = p
            o = self.outcomes[j]
            m = self.marginal(name)
            sc = self._outcome_scale(j, scale)
            info = next(t for t in self.targets if t.name == name)
            row = {"target": name, "kind": kind, OUTCOME: o, "measure": self.measures[j], "observed": True,
                   "n_trials": info.n_trials}
            row.update(self._stats(m, prob, sc))
            t = (th or {}).get(o) if isinstance(th, dict) else None
            if t is not None:
                row.update(decision_probabilities(m, t))
            row.update(exact=True, ci_prob=float(prob), scale=sc)
            if t is not None:
                row.update(self._threshold_columns(t, sc))
            rows.append(row)
        return pd.DataFrame(rows)

    def decision_table(self, mcid=None, benefit=None, harm=None, targets=None, prob=0.95, scale=None):
        """Per-outcome decision probabilities (each outcome with its own thresholds and scale).

        ``mcid``, ``benefit`` and ``harm`` may be dicts ``{outcome: value}`` overriding the stored
        thresholds of that outcome. Columns as in every result, plus ``outcome`` and ``measure``.
        """
        ths = {}
        for j, o in enumerate(self.outcomes):
            pick = [x.get(o) if isinstance(x, dict) else (None if x is None else "scalar") for x in (mcid, benefit, harm)]
            if "scalar" in pick:
                raise KetabayesError("a bivariate result has one threshold per outcome: give mcid/benefit/harm as "
                                     f"dicts, e.g. mcid={{'{self.outcomes[0]}': 10}}")
            t = Thresholds.resolve(self.outcome_thresholds(o), *pick, self.measures[j], required=False)
            if t is not None:
                ths[o] = t
        if not ths:
            raise KetabayesError("give thresholds (mcid= and harm_threshold= at fit time, or mcid={outcome: ...})")
        df = self._table(self._default_targets() if targets is None else list(targets), prob, ths, scale)
        df.attrs.update(thresholds={o: t.to_dict() for o, t in ths.items()},
                        thresholds_text={o: t.describe(self.measures[self._j(o)]) for o, t in ths.items()},
                        measure=self.measure, engine=self.engine, model=self.model_type)
        return df

    def summary(self, prob: float = 0.95, scale=None, targets=None) -> pd.DataFrame:
        out = super().summary(prob=prob, scale=scale, targets=targets)
        out.loc[out["kind"] == "scale", "scale"] = "identity"
        return out

    def benefit_curve(self, thresholds=None, target: str | None = None, scale=None) -> pd.DataFrame:
        target = target or f"mean|outcome={self.outcomes[0]}"
        p = self._parse(target)
        if p is None or p[0] == "tau":
            self.marginal(target)
            raise KetabayesError(f"no benefit curve for {target!r}")
        j = p[1]
        th = self.outcome_thresholds(self.outcomes[j])
        direction = th.benefit if th else "lower"
        ratio = self.measures[j] in RATIO_MEASURES
        m = self.marginal(target)
        if thresholds is None:
            thresholds = np.exp(np.linspace(0, 1, 51)) if ratio else np.linspace(0, 3 * m.sd + abs(m.mean), 51)
        df = benefit_curve(m, thresholds, benefit=direction, ratio=ratio)
        df.insert(0, "target", target)
        df["scale"] = "ratio" if ratio else "identity"
        df["benefit_direction"] = direction
        return df

    # ------------------------------------------------------------------ joint questions
    def _joint_setup(self, mcid, harm_threshold):
        o1, o2 = self.outcomes
        t1 = (Thresholds.for_measure(mcid, self.measures[0], self.outcome_thresholds(o1).benefit
                                     if self.outcome_thresholds(o1) else "lower")
              if mcid is not None else self.outcome_thresholds(o1))
        t2 = (Thresholds.for_measure(harm_threshold, self.measures[1], self.outcome_thresholds(o2).benefit
                                     if self.outcome_thresholds(o2) else "lower")
              if harm_threshold is not None else self.outcome_thresholds(o2))
        if t1 is None or t2 is None:
            raise KetabayesError("the joint question needs the efficacy MCID and the harm threshold "
                                 "(fit(mcid=..., harm_threshold=...) or joint_table(mcid=..., harm_threshold=...))")
        return t1, t2

    def joint_table(self, mcid: float | None = None, harm_threshold: float | None = None) -> pd.DataFrame:
        """Probabilities of the four benefit x harm quadrants, for the average and a new trial.

        *Benefit*: the efficacy effect beyond the MCID in the direction of benefit. *Acceptable
        harm*: the harm effect on the good side of the harm threshold (e.g. RR below 1.25 when fewer
        events are better). Exact: mixtures of bivariate normal CDFs.

        Returns
        -------
        pandas.DataFrame
            One row per target (``mean``, ``predictive``): ``p_benefit_acceptable_harm`` (the
            favourable quadrant), ``p_benefit_unacceptable_harm``, ``p_no_benefit_acceptable_harm``,
            ``p_no_benefit_unacceptable_harm``, the marginals ``p_benefit``, ``p_acceptable_harm``,
            and the cut points ``benefit_cut`` (efficacy scale), ``harm_cut`` (harm on the ratio scale for
            ratio measures) with the directions.
        """
        t1, t2 = self._joint_setup(mcid, harm_threshold)
        lo1, hi1 = t1.cuts()
        lo2, hi2 = t2.cuts()
        s1 = 1.0 if t1.benefit == "lower" else -1.0
        s2 = 1.0 if t2.benefit == "lower" else -1.0
        # benefit: s1 * X1 <= s1 * cut1 ; acceptable harm: s2 * X2 <= s2 * cut2
        cut1 = lo1 if t1.benefit == "lower" else hi1
        cut2 = hi2 if t2.benefit == "lower" else lo2
        rows = []
        for kind in _KINDS:
            pb = float(self.exact.marginal(kind, 0).cdf(cut1))
            pa = float(self.exact.marginal(kind, 1).cdf(cut2))
            pb, pa = (pb if s1 > 0 else 1 - pb), (pa if s2 > 0 else 1 - pa)
            both = self.exact.prob_quadrant(kind, cut1, cut2, s1, s2)
            rows.append({"target": kind, "p_benefit_acceptable_harm": both,
                         "p_benefit_unacceptable_harm": pb - both, "p_no_benefit_acceptable_harm": pa - both,
                         "p_no_benefit_unacceptable_harm": 1.0 - pb - pa + both, "p_benefit": pb,
                         "p_acceptable_harm": pa,
                         "benefit_cut": cut1, "benefit_direction": t1.benefit,
                         "harm_cut": math.exp(cut2) if t2.ratio else cut2, "harm_direction": t2.benefit,
                         "efficacy": self.outcomes[0], "harm": self.outcomes[1], "exact": True})
        return pd.DataFrame(rows)

    def _harm_increase(self, x2, baseline_risk):
        """Harm increase of harm-scale values ``x2``: extra events per 100 patients for ratio / RD measures."""
        m = self.measures[1]
        t2 = self.outcome_thresholds(self.outcomes[1])
        sign = 1.0 if (t2 is None or t2.benefit == "lower") else -1.0
        if m in ("RR", "OR"):
            if baseline_risk is None or not 0 < baseline_risk < 1:
                raise KetabayesError(f"net benefit on the {m} scale needs the baseline risk of the harm outcome "
                                     "(baseline_risk=..., an assumption) to turn the ratio into extra events")
            p0 = baseline_risk
            p1 = np.minimum(p0 * np.exp(x2), 1.0) if m == "RR" else 1.0 / (1.0 + (1 - p0) / p0 * np.exp(-x2))
            return sign * 100.0 * (p1 - p0), f"extra events per 100 patients at baseline risk {p0:g} (assumed)"
        if m == "RD":
            return sign * 100.0 * x2, "extra events per 100 patients"
        return sign * x2, f"harm-outcome units ({m})"

    def net_benefit(self, weights, baseline_risk: float | None = None, target: str = "mean",
                    n_nodes: int = 48) -> pd.DataFrame:
        """Net benefit ``gain - w * harm_increase`` over a range of trade-off weights ``w``.

        ``gain`` is the efficacy improvement in its own units (``-X1`` when lower is better);
        ``harm_increase`` is, for RR/OR, the extra events per 100 patients at ``baseline_risk``
        (``100 (p1 - p0)``, with ``p1 = min(p0 RR, 1)``), for RD ``100 * RD``, otherwise the harm effect in its units. ``w`` is
        how many efficacy units one unit of harm increase is worth -- a value judgement: give a range.

        Exact up to Gauss-Hermite integration over the harm effect within each mixture component
        (``n_nodes`` nodes; the efficacy effect given the harm effect is normal).

        Returns
        -------
        pandas.DataFrame
            ``weight, mean_net, p_net_benefit`` (P(net > 0)), ``mean_gain, mean_harm_increase``,
            ``harm_units``, ``target``.
        """
        if target not in _KINDS:
            raise KetabayesError(f"target must be 'mean' or 'predictive', got {target!r}")
        w_arr = np.atleast_1d(np.asarray(weights, dtype=float))
        if np.any(~np.isfinite(w_arr)) or np.any(w_arr < 0):
            raise KetabayesError(f"weights must be non-negative numbers, got {weights!r}")
        t1 = self.outcome_thresholds(self.outcomes[0])
        g = -1.0 if (t1 is None or t1.benefit == "lower") else 1.0
        wt, m, c = self.exact.components(target)
        x, gw = special.roots_hermitenorm(n_nodes)
        gw = gw / gw.sum()
        s2 = np.sqrt(c[:, 1, 1])
        x2 = m[:, 1, None] + s2[:, None] * x  # (J, n)
        beta = c[:, 0, 1] / c[:, 1, 1]
        m1 = m[:, 0, None] + beta[:, None] * (x2 - m[:, 1, None])
        sd1 = np.sqrt(np.maximum(c[:, 0, 0] - beta * c[:, 0, 1], 1e-300))[:, None]
        h, units = self._harm_increase(x2, baseline_risk)
        mean_h = float(wt @ (h @ gw))
        mean_gain = float(wt @ (g * m[:, 0]))
        rows = []
        for w in w_arr:
            # P(g X1 - w h > 0 | X2) = P(g X1 > w h): X1 | X2 ~ N(m1, sd1^2)
            z = (g * m1 - w * h) / sd1
            p = float(wt @ (special.ndtr(z) @ gw))
            rows.append({"target": target, "weight": float(w), "mean_net": mean_gain - w * mean_h,
                         "p_net_benefit": p, "mean_gain": mean_gain, "mean_harm_increase": mean_h,
                         "harm_units": units})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ output
    def _extra_dict(self) -> dict:
        out = {"outcomes": self.outcomes, "measures": self.measures, "assumptions": self.assumptions}
        try:
            out["joint"] = self.joint_table().to_dict(orient="records")
        except KetabayesError:
            out["joint"] = None
        return out

    def to_dict(self, mcid=None, benefit=None, harm=None, scale=None) -> dict:
        from ketabayes.provenance import to_json

        try:
            table = self.decision_table(mcid, benefit, harm, scale=scale)
        except KetabayesError:
            table = self._table(self._default_targets(), 0.95, None, scale)
        s = self.summary(scale=scale).set_index("target")
        out = {"model": self.model_type, "measure": self.measure, "scale": scale or "analysis",
               "estimates": table.to_dict(orient="records"),
               "scales": {n: {k: s.loc[n, k] for k in ("mean", "median", "ci_low", "ci_high", "hpd_low", "hpd_high")}
                          for n in self.scale_names},
               "diagnostics": {"engine": "exact",
                               "note": "exact posterior (quadrature over tau1, tau2, rho_between); no MCMC"},
               "settings": dict(self.settings)}
        out.update(self._extra_dict())
        return json.loads(to_json(out))

    def _header(self) -> list[str]:
        lines = super()._header()
        return lines[:1] + [f"assumption: {a}" for a in self.assumptions] + lines[1:]

    @classmethod
    def _from_tree(cls, tree, settings, diagnostics):
        from ketabayes.inference.restore import exact_bivariate

        return cls(tree, settings, exact=exact_bivariate(tree, settings), diagnostics=diagnostics)


class _CachedMixture(MixtureMarginal):
    """A mixture with many components (one per quadrature node): quantiles computed once per request."""

    def ppf(self, q):
        q = np.asarray(q, dtype=float)
        cache = self.__dict__.setdefault("_ppf_cache", {})
        key = (q.shape, q.tobytes())
        if key not in cache:
            cache[key] = super().ppf(q)
        return cache[key].copy()

