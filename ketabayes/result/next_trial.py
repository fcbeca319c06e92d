"""The next trial: what a new trial of ``n`` patients per arm would do to a meta-analysis.

For a normal-normal result (:class:`~ketabayes.result.result.MetaResult`) a new trial
reports an estimate ``y_new ~ N(theta_new, s2(n))`` of its own effect
``theta_new ~ N(mu, tau^2)``; ``s2(n)`` follows from ``n`` per arm and an assumed outcome
SD (or baseline risk for binary outcomes). With the exact engine everything given ``tau``
is Gaussian, so with the current posterior on quadrature nodes ``tau_j`` (weights ``w_j``,
``mu | tau_j, y ~ N(m_j, V_j)``):

* the predictive of the new estimate is the normal mixture
  ``sum_j w_j N(m_j, V_j + tau_j^2 + s2)``;
* after observing ``y_new`` the nodes are re-weighted by the new estimate's likelihood,
  ``w_j' ∝ w_j N(y_new | m_j, V_j + tau_j^2 + s2)``, and ``mu | tau_j, y, y_new`` is normal
  with precision ``1/V_j + 1/(tau_j^2 + s2)`` (a conjugate update), so the updated
  ``P(benefit)`` is a closed-form function ``g(y_new)``;
* the assurance ``P(g(y_new) >= threshold)`` is the predictive mass of the set where
  ``g >= threshold``: its end points are found by a scan and Brent's method and the mass
  is an exact mixture-CDF difference. Expectations over ``y_new`` (the expected updated
  probabilities and the EVSI) are Gauss-Legendre integrals against the predictive, split at
  the kinks of the integrand.

As ``n -> inf`` the new trial pins its own ``theta_new`` only; with ``tau > 0`` the
updated posterior of ``mu`` keeps variance ``1/(1/V_j + 1/tau_j^2)``, so the assurance
tends to a limit below one: :func:`next_trial` reports that limit and says when
heterogeneity makes a single trial unable to settle the question.

For results without an exact engine (NUTS) the same quantities are estimated by
simulation (new trials drawn from the posterior draws, the posterior updated by
importance re-weighting of the draws), with the Monte-Carlo standard error reported.

The expected updated probability equals the current one (a martingale: learning
cannot be expected to move a probability); it is reported as a check.

References
----------
Sutton AJ, Cooper NJ, Jones DR, Lambert PC, Thompson JR, Abrams KR (2007).
Evidence-based sample size calculations based upon updated meta-analysis. Stat Med
26:2479-2500. doi:10.1002/sim.2704

O'Hagan A, Stevens JW, Campbell MJ (2005). Assurance in clinical trial design.
Pharm Stat 4:187-201. doi:10.1002/pst.175
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special

from ketabayes.decision import RATIO_MEASURES, Thresholds
from ketabayes.errors import KetabayesError
from ketabayes.marginals import MixtureMarginal

__all__ = ["next_trial", "NextTrial", "new_trial_variance"]

_REGIONS = ("benefit", "trivial", "harm")


def new_trial_variance(n_per_arm, measure: str, *, sd: float | None = None, baseline_risk: float | None = None,
                       effect: float = 0.0) -> tuple[np.ndarray, str]:
    """Sampling variance of a new two-arm trial's estimate with ``n`` patients per arm.

    Parameters
    ----------
    n_per_arm : array_like
        Patients per arm (> 1; ``inf`` gives variance 0).
    measure : str
        ``MD``/``GEN`` (needs ``sd``: ``2 sd^2 / n``), ``SMD`` (``2/n + d^2/(4n)``),
        ``OR``/``RR`` (log scale; needs ``baseline_risk``, the control-arm risk, and uses the
        treatment-arm risk implied by ``effect``), ``RD`` (needs ``baseline_risk``).
    sd : float, optional
        Outcome SD in each arm (an assumption, stated in the output).
    baseline_risk : float, optional
        Control-arm event risk (an assumption, stated in the output).
    effect : float
        Effect on the analysis scale used for the treatment-arm risk (OR/RR/RD) and for SMD.

    Returns
    -------
    (numpy.ndarray, str)
        Variances and a sentence stating the assumption.

    Examples
    --------
    >>> from ketabayes.result.next_trial import new_trial_variance
    >>> v, text = new_trial_variance([50, 200], "MD", sd=20)
    >>> v.tolist()
    [16.0, 4.0]
    """
    n = np.asarray(n_per_arm, dtype=float)
    if np.any(~(n > 1)):
        raise KetabayesError(f"n_per_arm must be numbers above 1 (patients per arm), got {n_per_arm!r}")
    m = (measure or "GEN").upper()
    with np.errstate(divide="ignore"):
        inv = np.where(np.isinf(n), 0.0, 1.0 / n)
    if m in ("MD", "GEN"):
        if sd is None or not (math.isfinite(sd) and sd > 0):
            raise KetabayesError(f"a new {m} trial needs the outcome SD per arm (sd=...), got {sd!r}")
        return 2.0 * sd**2 * inv, f"outcome SD {sd:g} in each arm (assumed); var = 2 SD^2 / n"
    if m == "SMD":
        return (2.0 + effect**2 / 4.0) * inv, f"SMD variance 2/n + d^2/(4n) at d = {effect:.3g}"
    if m in ("OR", "RR", "RD", "HR"):
        if m == "HR":
            raise KetabayesError("next_trial does not size HR trials (it needs event counts); use sd= with GEN")
        p0 = baseline_risk
        if p0 is None or not (0 < p0 < 1):
            raise KetabayesError(f"a new {m} trial needs the control-arm risk (baseline_risk=...), got {p0!r}")
        if m == "OR":
            p1 = 1.0 / (1.0 + (1.0 - p0) / p0 * math.exp(-effect))
            var = 1.0 / (p0 * (1 - p0)) + 1.0 / (p1 * (1 - p1))
        elif m == "RR":
            p1 = min(p0 * math.exp(effect), 0.999)
            var = (1 - p0) / p0 + (1 - p1) / p1
        else:
            p1 = min(max(p0 + effect, 0.001), 0.999)
            var = p0 * (1 - p0) + p1 * (1 - p1)
        return var * inv, (f"control-arm risk {p0:g} (assumed), treatment-arm risk {p1:.3g} at the current "
                           f"posterior mean effect; large-sample variance of the {m}")
    raise KetabayesError(f"next_trial cannot size a trial for measure {measure!r}")


@dataclass
class NextTrial:
    """What a new trial would do, by its size per arm.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per ``n_per_arm`` (the last row ``n_per_arm = inf`` is the limit):
        ``se_new``; ``assurance_benefit``, ``assurance_trivial``, ``assurance_harm`` (probability
        that the updated meta-analysis gives ``P(region) >= threshold``), ``p_settled`` (their
        sum; the regions are disjoint for ``threshold > 0.5``); ``expected_p_*`` (expected updated
        probabilities, equal to the current ones); ``q10_p_<region>``, ``q90_p_<region>`` (region = ``which``, or
        benefit for ``which="any"``; 10% and 90%
        predictive quantiles of the updated probability); ``evsi``; ``exact``; ``mc_se`` (the largest
        binomial Monte-Carlo SE of the assurance columns; 0 when exact).
    which : str
        Region whose assurance decides when the question is settled.
    threshold, assurance_target : float
    settling_n : float or None
        Smallest ``n`` per arm with ``assurance_<which> >= assurance_target`` (continuous), or ``None``.
    statement : str
        The conclusion in words (including when heterogeneity makes one trial unable to settle it).
    assumptions : dict
    """

    table: pd.DataFrame
    which: str
    threshold: float
    assurance_target: float
    settling_n: float | None
    statement: str
    current: dict
    assumptions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        import json

        from ketabayes.provenance import to_json

        return json.loads(to_json({"which": self.which, "threshold": self.threshold,
                                   "assurance_target": self.assurance_target, "settling_n": self.settling_n,
                                   "statement": self.statement, "current": self.current,
                                   "assumptions": self.assumptions,
                                   "table": self.table.to_dict(orient="records")}))


# ---------------------------------------------------------------------- exact engine
class _ExactUpdate:
    """Pre-posterior calculus of one new trial for a normal mixture over tau nodes."""

    def __init__(self, weights, m, V, tau2, th: Thresholds):
        keep = weights > 1e-14 * weights.max()
        self.w, self.m, self.V, self.t2 = weights[keep] / weights[keep].sum(), m[keep], V[keep], tau2[keep]
        self.lo, self.hi = th.cuts()
        self.th = th

    def predictive(self, s2) -> MixtureMarginal:
        return MixtureMarginal(self.w, self.m, np.sqrt(self.V + self.t2 + s2))

    def update(self, y, s2):
        """Updated node weights, means and variances of mu given new estimates ``y`` (array)."""
        y = np.asarray(y, dtype=float)[:, None]
        S = self.V + self.t2 + s2
        lw = np.log(self.w) - 0.5 * np.log(S) - 0.5 * (y - self.m) ** 2 / S
        lw -= special.logsumexp(lw, axis=1, keepdims=True)
        r = self.t2 + s2
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = 1.0 / self.V + 1.0 / r
            mean = np.where(r > 0, (self.m / self.V + y / r) / prec, y)
        var = np.where(r > 0, 1.0 / prec, 0.0)
        return np.exp(lw), mean, np.broadcast_to(var, mean.shape)

    def probs(self, y, s2) -> dict:
        """Updated P(benefit), P(trivial), P(harm) and E[mu] for each new estimate ``y``."""
        w, mean, var = self.update(y, s2)
        sd = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            c_lo = special.ndtr(np.where(sd > 0, (self.lo - mean) / sd, np.where(mean <= self.lo, np.inf, -np.inf)))
            c_hi = special.ndtr(np.where(sd > 0, (self.hi - mean) / sd, np.where(mean <= self.hi, np.inf, -np.inf)))
        p_lo, p_hi = (w * c_lo).sum(1), 1.0 - (w * c_hi).sum(1)
        ben, harm = (p_lo, p_hi) if self.th.benefit == "lower" else (p_hi, p_lo)
        return {"benefit": ben, "trivial": 1.0 - p_lo - p_hi, "harm": harm, "mean": (w * mean).sum(1)}

    # -------------------------------------------------------------- integrals over y_new
    def _range(self, pred):
        lo, hi = (float(x) for x in pred.ppf(np.array([1e-13, 1.0 - 1e-13])))
        return lo, hi

    @staticmethod
    def _roots(f, grid, vals):
        out = []
        s = np.sign(vals)
        for i in np.flatnonzero(s[:-1] * s[1:] < 0):
            out.append(optimize.brentq(f, grid[i], grid[i + 1], xtol=1e-12 * (1 + abs(grid[i])), rtol=1e-14))
        return out

    def scan(self, s2, grid_n=801):
        """Predictive, a grid over its range and the updated probabilities on the grid."""
        pred = self.predictive(s2)
        a, b = self._range(pred)
        grid = np.linspace(a, b, grid_n)
        return pred, grid, self.probs(grid, s2)

    def assurance(self, s2, threshold, which, scan=None):
        """P_pred(updated P(which) >= threshold): predictive mass where the updated probability is high enough.

        The end points of that set are roots of ``g(y) - threshold`` located on a grid and refined
        by Brent's method; the mass is an exact mixture-CDF difference.
        """
        pred, grid, probs = scan or self.scan(s2)
        vals = probs[which] - threshold

        def f(y):
            return float(self.probs(np.array([y]), s2)[which][0] - threshold)

        roots = self._roots(f, grid, vals)
        pts = np.concatenate([[-np.inf], roots, [np.inf]])
        cdf = np.concatenate([[0.0], pred.cdf(np.asarray(roots, dtype=float)), [1.0]])
        total = 0.0
        for i in range(pts.size - 1):
            # every interval between roots holds a grid point (each root lies in its own grid cell)
            j = int(np.searchsorted(grid, pts[i], side="right"))
            if vals[min(j, grid.size - 1)] >= 0:
                total += cdf[i + 1] - cdf[i]
        return float(min(max(total, 0.0), 1.0))

    def expectations(self, s2, delta, gs, scan=None, panels=48, order=16):
        """E_pred of the updated probabilities and of max(0, updated expected gain).

        Gauss-Legendre on panels of the predictive's range, split at the kinks of the
        gain (where the decision switches), against the predictive density.
        """
        pred, grid, probs = scan or self.scan(s2)
        edges = np.linspace(grid[0], grid[-1], panels + 1)

        def gain(y):
            return float(gs * self.probs(np.array([y]), s2)["mean"][0] - delta)

        roots = self._roots(gain, grid, gs * probs["mean"] - delta)
        # components with small tau pin mu to y_new: the updated probabilities step at the cut points
        # over a width ~ tau_j, so the panels are refined geometrically towards them
        width = edges[1] - edges[0]
        steps = width * 2.0 ** -np.arange(0, 40)
        cuts = [c + sgn * steps for c in (self.lo, self.hi) for sgn in (-1.0, 1.0)]
        edges = np.concatenate([edges, roots, [self.lo, self.hi], *cuts])
        edges = np.unique(edges[(edges >= grid[0]) & (edges <= grid[-1])])
        x, w = special.roots_legendre(order)
        half = 0.5 * np.diff(edges)
        mid = 0.5 * (edges[1:] + edges[:-1])
        y = (mid[:, None] + half[:, None] * x).ravel()
        wy = (half[:, None] * w).ravel() * pred.pdf(y)
        p = self.probs(y, s2)
        out = {r: float(wy @ p[r]) for r in _REGIONS}
        out["value"] = float(wy @ np.maximum(gs * p["mean"] - delta, 0.0))
        return out


def _gain_sign(th: Thresholds) -> float:
    return -1.0 if th.benefit == "lower" else 1.0


def next_trial(result, n_per_arm, *, sd: float | None = None, baseline_risk: float | None = None,
               threshold: float = 0.8, which: str = "any", assurance_target: float = 0.8,
               mcid: float | None = None, benefit: str | None = None, harm: float | None = None,
               target: str = "mean", tau=None, n_sim: int = 4000, seed: int = 1) -> NextTrial:
    """Assurance, expected posterior probabilities and EVSI of a new trial, by its size.

    Parameters
    ----------
    result : MetaResult
        A normal-normal result (exact engine: exact answers; NUTS: simulation with MC error).
    n_per_arm : sequence of int
        Patients per arm of the new trial.
    sd, baseline_risk : float, optional
        Assumed outcome SD per arm (MD/GEN) or control-arm risk (OR/RR/RD): see
        :func:`new_trial_variance`.
    threshold : float
        The updated meta-analysis "settles" a region when its posterior probability is at least this (> 0.5).
    which : {"any", "benefit", "trivial", "harm"}
        What "settled" means for ``settling_n``: ``"any"`` (default) -- the updated analysis reaches a
        conclusion, whichever (``p_settled``); or one conclusion: benefit beyond the MCID, practically
        no effect, harm.
    assurance_target : float
        Assurance at which the question is expected to be settled (for ``settling_n``).
    mcid, benefit, harm : optional
        Thresholds (default: those stored with the result).
    target : {"mean"}
        The quantity whose updated posterior decides (the average effect ``mu``).
    tau : float, Prior or str, optional
        Only for fixed-effect results, e.g. a re-analysis of a *published pooled estimate*, which
        carries no information on between-trial heterogeneity: the assumed SD of the new trial's true
        effect around ``mu`` (a number, or a prior such as ``"halfnormal(5)"``, integrated by
        quadrature and updated by the new trial). ``None`` assumes no heterogeneity (the new trial
        estimates ``mu`` itself), which is optimistic; the assumption is stated in the output.
    n_sim : int
        Simulated trials per ``n`` for NUTS results.
    seed : int
        Seed of the simulation (NUTS results only).

    Returns
    -------
    NextTrial

    Notes
    -----
    EVSI uses the MCID-based linear utility: adopting the treatment is worth its benefit beyond the
    MCID, ``gain = -mu - MCID`` (lower is better; ``mu - MCID`` if higher is better; on the analysis
    scale, log scale for ratios), not adopting is worth 0. ``EVSI = E[max(0, E[gain | y, y_new])] -
    max(0, E[gain | y])`` per patient treated, in outcome units.

    Examples
    --------
    >>> import ketabayes as kb
    >>> res = kb.RandomEffectsModel.from_arrays([-20.0, -10.0, -14.0], [64.0, 49.0, 81.0], measure="MD",
    ...     prior_mu="normal(0, 50)", prior_tau="halfnormal(10)").fit(mcid=10, seed=1, frequentist=False)
    >>> nt = kb.next_trial(res, [50, 200], sd=20)
    >>> nt.table[["n_per_arm", "assurance_benefit"]].round(3).to_dict("list")["n_per_arm"]
    [50.0, 200.0, inf]
    """
    if target != "mean":
        raise KetabayesError("next_trial decides on the average effect only (target='mean')")
    if which not in ("any", *_REGIONS):
        raise KetabayesError(f"which must be one of any, {', '.join(_REGIONS)}, got {which!r}")
    if not 0.5 < threshold < 1.0:
        raise KetabayesError(f"threshold must be in (0.5, 1), got {threshold!r}")
    if not 0.0 < assurance_target < 1.0:
        raise KetabayesError(f"assurance_target must be in (0, 1), got {assurance_target!r}")
    if result.model_type not in ("random effects", "fixed effect"):
        raise KetabayesError(f"next_trial needs a normal-normal meta-analysis (MetaResult), got {result.model_type!r}")
    th = result._thresholds(mcid, benefit, harm)
    ns = sorted({float(n) for n in np.atleast_1d(np.asarray(n_per_arm, dtype=float))})
    cur = result.marginal("mean")
    s2, text = new_trial_variance(ns, result.measure, sd=sd, baseline_risk=baseline_risk, effect=float(cur.mean))
    ns.append(math.inf)
    s2 = np.append(s2, 0.0)
    gs = _gain_sign(th)
    delta = th.delta_benefit
    from ketabayes.decision import decision_probabilities

    now = decision_probabilities(cur, th)
    current = {"p_benefit": now["p_benefit"], "p_trivial": now["p_trivial"], "p_harm": now["p_harm"],
               "expected_gain": gs * cur.mean - delta}
    qwhich = "benefit" if which == "any" else which
    e = result.exact
    het_text = "between-trial heterogeneity from the meta-analysis' own posterior of tau"
    if tau is not None and not getattr(result, "fixed", False):
        raise KetabayesError("tau= is for fixed-effect results (e.g. a published pooled estimate); a random-effects "
                             "result already has a posterior for tau")
    if getattr(result, "fixed", False):
        het_text = ("no heterogeneity assumed: the new trial estimates the average effect itself (optimistic)"
                    if tau is None else f"heterogeneity of the new trial around the average assumed: tau ~ {tau}")
    if e is not None:
        if getattr(result, "fixed", False) and tau is not None:
            t_nodes, t_w = _tau_nodes(tau)
            upd = _ExactUpdate(t_w, np.full(t_w.shape, float(e.cond_mean[0])), np.full(t_w.shape, float(e.cond_var[0])),
                               t_nodes**2, th)
        else:
            upd = _ExactUpdate(np.asarray(e.weights), np.asarray(e.cond_mean), np.asarray(e.cond_var),
                               np.asarray(e.tau_nodes) ** 2, th)
        rows = [_exact_row(upd, n, v, threshold, qwhich, gs, delta, current) for n, v in zip(ns, s2)]
        n_fun = _continuous_assurance(upd, result.measure, sd, baseline_risk, float(cur.mean), threshold, which)
    else:
        if tau is not None:
            raise KetabayesError("tau= needs the exact engine")
        rows = [_sim_row(result, n, v, threshold, qwhich, gs, delta, current, n_sim, seed, th) for n, v in zip(ns, s2)]
        n_fun = None
    table = pd.DataFrame(rows)
    col = "p_settled" if which == "any" else f"assurance_{which}"
    limit = float(table[col].iloc[-1])
    heterogeneous = not (getattr(result, "fixed", False) and (tau is None or tau == 0))
    settling, statement = _settle(table, which, col, threshold, assurance_target, limit, n_fun, heterogeneous)
    assumptions = {"new_trial_variance": text, "sd": sd, "baseline_risk": baseline_risk, "heterogeneity": het_text,
                   "thresholds": th.to_dict(), "thresholds_text": th.describe(result.measure),
                   "evsi_utility": "gain = benefit beyond the MCID on the analysis scale, per patient treated",
                   "method": "exact (quadrature over tau, closed forms given tau)" if e is not None else
                   f"simulation ({n_sim} trials per n, importance re-weighting of the posterior draws)"}
    return NextTrial(table, which, float(threshold), float(assurance_target), settling, statement, current,
                     assumptions)


def _tau_nodes(tau):
    """Quadrature nodes and weights of an assumed tau: a point, or a prior integrated in log(tau)."""
    if isinstance(tau, (int, float, np.integer, np.floating)):
        if not (math.isfinite(tau) and tau >= 0):
            raise KetabayesError(f"tau must be a non-negative number or a prior, got {tau!r}")
        return np.array([float(tau)]), np.ones(1)
    from ketabayes.inference.exact import prior_tau_nodes

    return prior_tau_nodes(tau)


def _exact_row(upd, n, s2, threshold, which, gs, delta, current):
    row = {"n_per_arm": n, "se_new": math.sqrt(s2)}
    if not (s2 > 0 or np.any(upd.t2 > 0)):  # fixed effect, infinite trial: mu becomes known, the updated P is 0 or 1
        for r in _REGIONS:
            row[f"assurance_{r}"] = current[f"p_{r}"]
        row["p_settled"] = 1.0
        for r in _REGIONS:
            row[f"expected_p_{r}"] = current[f"p_{r}"]
        row.update({f"q10_p_{which}": float("nan"), f"q90_p_{which}": float("nan")})
        m = MixtureMarginal(upd.w, upd.m, np.sqrt(upd.V))
        row["evsi"] = _evsi_perfect(m, gs, delta) - max(0.0, current["expected_gain"])
        row.update(exact=True, mc_se=0.0)
        return row
    sc = upd.scan(s2)
    for r in _REGIONS:
        row[f"assurance_{r}"] = upd.assurance(s2, threshold, r, sc)
    row["p_settled"] = sum(row[f"assurance_{r}"] for r in _REGIONS)
    ex = upd.expectations(s2, delta, gs, sc)
    for r in _REGIONS:
        row[f"expected_p_{r}"] = ex[r]
    qs = _prob_quantiles(upd, s2, which, sc, (0.1, 0.9))
    row.update({f"q10_p_{which}": qs[0], f"q90_p_{which}": qs[1]})
    row["evsi"] = max(ex["value"] - max(0.0, current["expected_gain"]), 0.0)
    row.update(exact=True, mc_se=0.0)
    return row


def _evsi_perfect(m: MixtureMarginal, gs, delta):
    """E[max(0, gs*mu - delta)] for a normal mixture (closed form per component)."""
    a = gs * m.means - delta
    z = a / m.sds
    return float(m.weights @ (a * special.ndtr(z) + m.sds * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)))


def _prob_quantiles(upd, s2, which, sc, qs):
    """Predictive quantiles of the updated P(which) (monotone case; NaN if it is not monotone)."""
    pred, grid, probs = sc
    p = probs[which]
    d = np.diff(p)
    if np.all(d <= 1e-12) or np.all(d >= -1e-12):
        # P(g(Y) <= t) for monotone g: the quantile of g(Y) is g at a quantile of Y
        ys = pred.ppf(np.array(qs) if np.all(d <= 1e-12) else 1.0 - np.array(qs))
        return [float(upd.probs(np.array([y]), s2)[which][0]) for y in ys]
    return [float("nan")] * len(qs)


def _continuous_assurance(upd, measure, sd, baseline_risk, effect, threshold, which):
    regions = _REGIONS if which == "any" else (which,)

    def f(n):
        s2 = float(new_trial_variance([n], measure, sd=sd, baseline_risk=baseline_risk, effect=effect)[0][0])
        sc = upd.scan(s2)
        return sum(upd.assurance(s2, threshold, r, sc) for r in regions)
    return f


def _settle(table, which, col, threshold, target, limit, n_fun, heterogeneous):
    label = {"any": "a conclusion (benefit beyond the MCID, practically no effect or harm)",
             "benefit": "benefit beyond the MCID", "trivial": "practically no effect", "harm": "harm"}[which]
    finite = table[np.isfinite(table["n_per_arm"])]
    hit = finite[finite[col] >= target]
    if limit < target:
        why = ("because between-trial heterogeneity (tau) limits what one trial says about the average effect"
               if heterogeneous else "because the trial may well show something else")
        return None, (f"No single trial is expected to settle it: even an infinitely large new trial reaches "
                      f"{label} at probability >= {threshold:g} only with chance {limit:.3f} < {target:g}, {why}.")
    n_star = None
    if n_fun is not None:
        lo = 2.0
        if n_fun(lo) >= target:
            n_star = lo
        else:
            hi = 4.0
            while hi < 1e8 and n_fun(hi) < target:
                lo, hi = hi, hi * 4.0
            if hi < 1e8:
                n_star = float(optimize.brentq(lambda n: n_fun(n) - target, lo, hi, xtol=0.01, rtol=1e-6))
    elif len(hit):
        n_star = float(hit["n_per_arm"].iloc[0])
    if n_star is None:
        return None, (f"The limit for an infinitely large trial is {limit:.3f}, but no size up to 1e8 per arm "
                      f"reaches {label} at probability >= {threshold:g} with chance {target:g}.")
    return n_star, (f"A new trial with about {math.ceil(n_star)} patients per arm has a {target:.0%} chance that the "
                    f"updated meta-analysis reaches {label} at probability >= {threshold:g} (infinitely large "
                    f"trial: {limit:.3f}).")


# ---------------------------------------------------------------------- simulation (NUTS results)
def _sim_row(result, n, s2, threshold, which, gs, delta, current, n_sim, seed, th):
    post = result.posterior
    mu = np.asarray(post["mu"].values, dtype=float).ravel()
    tau = np.asarray(post["tau"].values, dtype=float).ravel() if "tau" in post else np.zeros_like(mu)
    rng = np.random.default_rng([seed, int(min(n, 1e12))])
    idx = rng.integers(0, mu.size, n_sim)
    y_new = mu[idx] + np.sqrt(tau[idx] ** 2 + s2) * rng.standard_normal(n_sim)
    lo, hi = th.cuts()
    S = np.maximum(tau**2 + s2, 1e-300)
    probs = {r: np.empty(n_sim) for r in _REGIONS}
    means = np.empty(n_sim)
    for start in range(0, n_sim, 256):
        y = y_new[start:start + 256, None]
        lw = -0.5 * np.log(S) - 0.5 * (y - mu) ** 2 / S
        w = np.exp(lw - lw.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        p_lo, p_hi = (w * (mu <= lo)).sum(1), (w * (mu > hi)).sum(1)
        b, h = (p_lo, p_hi) if th.benefit == "lower" else (p_hi, p_lo)
        probs["benefit"][start:start + 256], probs["harm"][start:start + 256] = b, h
        probs["trivial"][start:start + 256] = 1.0 - p_lo - p_hi
        means[start:start + 256] = (w * mu).sum(1)
    row = {"n_per_arm": n, "se_new": math.sqrt(s2)}
    for r in _REGIONS:
        row[f"assurance_{r}"] = float(np.mean(probs[r] >= threshold))
    row["p_settled"] = sum(row[f"assurance_{r}"] for r in _REGIONS)
    for r in _REGIONS:
        row[f"expected_p_{r}"] = float(probs[r].mean())
    row.update({f"q10_p_{which}": float(np.quantile(probs[which], 0.1)),
                f"q90_p_{which}": float(np.quantile(probs[which], 0.9))})
    row["evsi"] = max(float(np.maximum(gs * means - delta, 0.0).mean()) - max(0.0, current["expected_gain"]), 0.0)
    a = [row[f"assurance_{r}"] for r in _REGIONS] + [row["p_settled"]]
    row.update(exact=False, mc_se=math.sqrt(max(max(x * (1 - x) for x in a), 1.0 / n_sim) / n_sim))
    return row


def _is_ratio(measure):  # pragma: no cover - helper for reporting
    return (measure or "").upper() in RATIO_MEASURES
