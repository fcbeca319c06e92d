"""Checked quadrature over up to four scale parameters (the variance components of the hierarchical engine).

The posterior of the variance components ``phi = (phi_1, ..., phi_C)`` (standardised, ``phi >= 0``) is
integrated with a tensor product of composite Gauss-Legendre rules, one per component, in

    ``w_c = asinh(phi_c / a_c)``,

which is linear in ``phi_c`` below ``a_c`` (where the posterior of a group scale estimated from a handful of
groups often piles up against zero) and logarithmic above it (a long right tail costs few nodes). How the
rule is placed and checked:

1. **Range from prior and likelihood.** A coarse product grid in ``u = log(phi)`` spans, per component, the
   prior's central ``1 - 2e-10`` mass and the zone where the likelihood varies (supplied by the caller); the
   prior's quartiles and the joint mode (found by a quick optimisation) are grid points, so a narrow prior
   or a sharp likelihood is not stepped over. Each component's profile (maximum of the log density over the
   others) is cut where it falls ``mass_cutoff`` below the maximum; an end where it has not fallen that far
   is moved outwards (up to the prior's support and the representable range) and the passes repeat until
   the box is stable. A profile that never decays within the representable range (an improper posterior)
   raises :class:`~ketabayes.errors.ExactIntegrationError`.
2. **Rule.** ``a_c`` is a fiftieth of the top of the range (``w`` then spans at most ``asinh(50)``), kept
   between ``e^-2`` and 1 times the peak of the profile; the coarse passes are repeated in ``w``, where their
   points sit near the mass, to cut the ends finely. Each axis starts with equal panels in ``w``
   (:class:`~ketabayes.inference.exact_hierarchical.GridSettings.nodes`).
3. **Checks and refinement.** For every axis and panel, the Gauss-Legendre rule is compared with a rule
   of half its order on the same panels, applied to the axis's marginal density and to the marginal first
   moment of every target (centred and scaled by the target's conditional sd at the peak): a second
   Gauss-Legendre rule (half a grid of new evaluations per axis) for up to ``checked_components``
   components, else the interpolatory rule on a symmetric half of the nodes (a null rule: no new
   evaluations). The error of the full rule is estimated from that difference ``d`` as
   ``d min(1, 10 d / I)`` as in the one-dimensional rule (``d min(1, 10 (d / I)^3)`` for the null rule,
   whose degree is a quarter of the full rule's); panels whose error exceeds ``check_tol`` of
   the total
   are split, and an end of the box that still carries density is extended. After ``max_refinements``
   rounds, or beyond ``max_nodes`` nodes, the integration stops with
   :class:`~ketabayes.errors.ExactIntegrationError` (suggesting NUTS).

One component is handled by :func:`~ketabayes.inference._log_scale_quadrature.integrate_log_scale` (the
normal-normal engine's checked one-dimensional rule), in the same variable ``w``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from ketabayes.errors import ExactIntegrationError
from ketabayes.inference._log_scale_quadrature import QuadratureSettings, gauss_legendre, integrate_log_scale

__all__ = ["KEEP_LOG", "TensorRule", "integrate_components"]

#: representable range of ``u = log(phi)`` for standardised scales (phi**2 must not overflow)
U_MIN, U_MAX = -700.0, 350.0


@dataclass
class TensorRule:
    """A tensor-product rule in ``w_c = asinh(phi_c / a_c)``.

    ``edges[c]`` (panel edges), ``nodes[c]`` (``npp`` Gauss-Legendre nodes per panel), ``log_w[c]`` (their
    log weights); ``ld`` the log density (in ``w``) at every node of the product (C order); ``keep`` the
    nodes whose normalised log weight exceeds :data:`KEEP_LOG` (the others carry no mass) and ``tm``, ``tv``
    the target moments there (targets x kept nodes; see ``moments`` of :func:`integrate_components`); ``log_z`` the log normaliser; ``error`` the largest estimated relative error of
    the checked integrals; ``refinements`` the rounds of refinement used; ``n_evaluations`` the number of
    density evaluations of the checked rules (all rounds, incl. the checks' second rules).
    """

    a: np.ndarray
    edges: list
    nodes: list
    log_w: list
    npp: int
    ld: np.ndarray
    tm: np.ndarray
    tv: np.ndarray
    log_z: float
    error: float
    refinements: int
    n_evaluations: int = 0
    keep: np.ndarray | None = None
    Y: np.ndarray | None = None   # the checked means (see integrate_components), while the rule is checked
    m0: np.ndarray | None = None  # the targets' conditional means and sds at the peak: the checks' centring
    sc: np.ndarray | None = None  # and scale


#: nodes whose normalised log weight is below this carry no mass (``e^-50``): their target moments are not needed
KEEP_LOG = -50.0

#: how the checks' second Gauss-Legendre rule integrates the other axes: "subset" (reusing the full rule's
#: values) or "full" (see _check)
CHECK_OTHERS = "subset"

#: the subset check's estimates are multiplied by this before the decision (see _check)
SUBSET_MARGIN = 1.5


@functools.lru_cache(maxsize=8)
def _null_weights(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a symmetric half of the ``n`` Gauss-Legendre nodes and the interpolatory weights there."""
    x, _ = gauss_legendre(n)
    left = list(range(0, n // 2, 2))
    idx = sorted(set(left + [n - 1 - i for i in left] + ([n // 2] if n % 2 else [])))
    xs = x[idx]
    V = np.polynomial.legendre.legvander(xs, len(idx) - 1).T  # P_j(x_i), j = 0..m-1
    rhs = np.zeros(len(idx))
    rhs[0] = 2.0
    w = np.linalg.solve(V, rhs)
    idx = np.asarray(idx)
    idx.flags.writeable = w.flags.writeable = False
    return idx, w


def _axis_rule(edges: np.ndarray, npp: int):
    x, wt = gauss_legendre(npp)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    nodes = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    return nodes, np.log((half[:, None] * wt[None, :]).ravel())


def integrate_components(evaluate, priors, zones, C: int, settings, *, what: str = "the variance components",
                         lo_hard=None, hi_hard=None, mean_map=None, moments=None) -> TensorRule:
    """Checked rule for the posterior of ``C`` standardised scale parameters.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(phi (N, C), targets) -> (log density in phi, tm (N, T), tv (N, T))``; the log density
        (prior times likelihood) may be ``-inf``; ``tm``, ``tv`` only when ``targets`` (else ``None``);
        ``targets="coef"``: instead of ``tm`` quantities ``Y (N, r)`` whose map ``Y @ mean_map`` gives the
        target means (``tv`` may be ``None``): the checks integrate them (cheaper than the targets).
    priors : sequence of callables
        Per component, ``ppf(q)`` of its prior on the standardised scale (or ``None``), for the range.
    zones : sequence of (float, float)
        Per component, the range of ``log(phi)`` where the likelihood varies.
    C : int
        Number of components.
    settings : GridSettings
    lo_hard, hi_hard : sequence of float, optional
        Per component, bounds of the prior's support in ``log(phi)`` (``-inf`` / ``inf`` if none).
    mean_map : array, shape (r, T), optional
        See ``evaluate``; without it the checks evaluate the target means themselves.
    moments : callable, optional
        ``moments(phi (N, C)) -> (tm, tv)``, each ``(rows, N)``: what the accepted rule stores at the nodes
        that carry mass (by default the targets' means and variances from ``evaluate``; a caller may store
        a compact form).
    """
    st = settings
    lo_hard = list(lo_hard) if lo_hard is not None else [-math.inf] * C
    hi_hard = list(hi_hard) if hi_hard is not None else [math.inf] * C
    lims = [(max(U_MIN, lo_hard[c]), min(U_MAX, hi_hard[c])) for c in range(C)]
    for c in range(C):
        if not lims[c][0] < lims[c][1]:
            raise ExactIntegrationError(f"the prior of {what} (component {c}) leaves no representable range")
    prior_pts = []
    box = []
    for c in range(C):
        pts = []
        ppf = priors[c]
        if ppf is not None:
            with np.errstate(all="ignore"):
                q = np.asarray(ppf(np.array([1e-10, 0.25, 0.5, 0.75, 1 - 1e-10])), dtype=float)
                lq = np.log(q)
            pts = [float(v) for v in lq if np.isfinite(v)]
        lo = min([zones[c][0], *pts[:1]]) - 1.0
        hi = max([zones[c][1], *pts[-1:]]) + 1.0
        box.append([max(lo, lims[c][0]), min(hi, lims[c][1])])
        prior_pts.append([p for p in pts[1:-1]])

    def logdens_u(U):
        lp = evaluate(np.exp(U), False)[0] + U.sum(1)
        return np.where(np.isfinite(lp), lp, -np.inf)

    if C == 1:
        rule = _one_component(evaluate, box[0], lims[0], (lo_hard[0], hi_hard[0]), prior_pts[0], st, what)
        _target_moments(rule, evaluate, st, moments)
        return rule
    mode = _mode(logdens_u, box, lims, C)
    n0 = st.coarse[C - 1]
    u_peak = np.zeros(C)
    for _ in range(st.passes):
        axes = []
        for c in range(C):
            g = np.linspace(box[c][0], box[c][1], n0)
            extra = [p for p in [*prior_pts[c], mode[c]] if box[c][0] < p < box[c][1]]
            axes.append(np.unique(np.concatenate([g, extra])))
        mesh = np.meshgrid(*axes, indexing="ij")
        ld = logdens_u(np.stack([m.ravel() for m in mesh], axis=1)).reshape(tuple(a.size for a in axes))
        top = float(np.max(ld))
        if not np.isfinite(top):
            raise ExactIntegrationError(f"the posterior of {what} could not be evaluated (non-finite density); "
                                        "check the data and the priors, or fit with method='nuts'")
        changed = False
        for c in range(C):
            prof = np.max(ld, axis=tuple(a for a in range(C) if a != c))
            g = axes[c]
            idx = np.flatnonzero(prof > top - st.mass_cutoff)
            u_peak[c] = g[int(np.argmax(prof))]
            lo, hi = g[max(idx[0] - 1, 0)], g[min(idx[-1] + 1, g.size - 1)]
            width = max(box[c][1] - box[c][0], 4.0)
            if idx[0] == 0 and box[c][0] > lims[c][0]:  # not decayed at the lower end: move it out
                lo, changed = max(box[c][0] - width, lims[c][0]), True
            if idx[-1] == g.size - 1 and box[c][1] < lims[c][1]:
                hi, changed = min(box[c][1] + width, lims[c][1]), True
            if (hi - lo) < 0.7 * (box[c][1] - box[c][0]):
                changed = True
            box[c] = [lo, hi]
        if not changed:
            break
    for c in range(C):  # an end at the representable limit (not the prior's bound) must carry no density
        prof = np.max(ld, axis=tuple(a for a in range(C) if a != c))
        if (box[c][1] >= U_MAX and box[c][1] < hi_hard[c] and prof[-1] > top - st.mass_cutoff) or \
                (box[c][0] <= U_MIN and prof[0] > top - st.mass_cutoff):
            raise ExactIntegrationError(
                f"the posterior of {what} does not decay within the range the exact engine can represent "
                "(is it improper?); use proper priors or method='nuts'")
    # linear in phi up to a (see _scale_a)
    a = _scale_a(u_peak, np.exp(np.minimum([b[1] for b in box], 690.0)))
    w_lo = np.array([math.asinh(math.exp(box[c][0]) / a[c]) for c in range(C)])
    for c in range(C):  # a lower end in the linear zone of w (phi < a) goes down to phi = 0: a short interval
        if w_lo[c] < 0.5 and lo_hard[c] == -math.inf:
            w_lo[c] = 0.0
    w_hi = np.array([math.asinh(min(math.exp(box[c][1]), 1e300) / a[c]) for c in range(C)])
    # the same passes in w, where the coarse points sit near the mass: the ends are cut finely
    w_lim = [(0.0 if lo_hard[c] == -math.inf else math.asinh(math.exp(lims[c][0]) / a[c]),
              math.asinh(math.exp(min(lims[c][1], 690.0)) / a[c])) for c in range(C)]
    w_mode = np.arcsinh(np.exp(np.minimum(mode, 690.0)) / a)

    def logdens_w(Wp):
        with np.errstate(over="ignore"):
            lp = evaluate(a * np.sinh(Wp), False)[0] + np.log(a * np.cosh(Wp)).sum(1)
        return np.where(np.isfinite(lp), lp, -np.inf)

    for _ in range(st.passes):
        # the top of the range came down: a fiftieth of it again (a smaller a resolves the peak better)
        phi_hi = a * np.sinh(w_hi)
        a_new = _scale_a(u_peak, phi_hi)
        if np.any(a_new < 0.5 * a):
            phi_lo = a * np.sinh(w_lo)
            a = a_new
            w_lo, w_hi = np.arcsinh(phi_lo / a), np.arcsinh(phi_hi / a)
            w_lim = [(0.0 if lo_hard[c] == -math.inf else math.asinh(math.exp(lims[c][0]) / a[c]),
                      math.asinh(math.exp(min(lims[c][1], 690.0)) / a[c])) for c in range(C)]
            w_mode = np.arcsinh(np.exp(np.minimum(mode, 690.0)) / a)
        axes = [np.unique(np.concatenate([np.linspace(w_lo[c], w_hi[c], n0),
                                          [w_mode[c]] if w_lo[c] < w_mode[c] < w_hi[c] else []])) for c in range(C)]
        mesh = np.meshgrid(*axes, indexing="ij")
        ld = logdens_w(np.stack([m.ravel() for m in mesh], axis=1)).reshape(tuple(x.size for x in axes))
        top = float(np.max(ld))
        changed = False
        for c in range(C):
            prof = np.max(ld, axis=tuple(x for x in range(C) if x != c))
            g = axes[c]
            idx = np.flatnonzero(prof > top - st.mass_cutoff)
            lo, hi = g[max(idx[0] - 1, 0)], g[min(idx[-1] + 1, g.size - 1)]
            width = w_hi[c] - w_lo[c]
            if idx[0] == 0 and w_lo[c] > w_lim[c][0]:
                lo, changed = max(w_lo[c] - 0.5 * width, w_lim[c][0]), True
            if idx[-1] == g.size - 1 and w_hi[c] < w_lim[c][1]:
                hi, changed = min(w_hi[c] + 0.5 * width, w_lim[c][1]), True
            if lo < 0.5 and lo_hard[c] == -math.inf:
                lo = 0.0
            if (hi - lo) < 0.7 * width:
                changed = True
            w_lo[c], w_hi[c] = lo, hi
        if not changed:
            break
    panels, npp = st.nodes[C - 1]
    edges = [np.linspace(w_lo[c], w_hi[c], panels + 1) for c in range(C)]
    hard_lo = [w_lo[c] <= w_lim[c][0] for c in range(C)]
    hard_hi = [w_hi[c] >= w_lim[c][1] and hi_hard[c] <= lims[c][1] for c in range(C)]
    tol = st.check_tol[C - 1]
    n_eval = [0]

    def counted(phi, targets):
        n_eval[0] += phi.shape[0]
        return evaluate(phi, targets)

    for it in range(st.max_refinements + 1):
        rule = _evaluate_rule(counted, a, edges, npp, C, st, mean_map)
        bad, err = _check(rule, C, tol, counted if C <= st.checked_components else None, st, mean_map)
        grow = _open_ends(rule, C, st, hard_lo, hard_hi)
        if not any(b.any() for b in bad) and not any(grow):
            rule.error, rule.refinements, rule.n_evaluations = err, it, n_eval[0]
            _target_moments(rule, evaluate, st, moments)
            return rule
        if it == st.max_refinements:
            break
        new_edges = []
        for c in range(C):
            e = edges[c]
            mid = 0.5 * (e[1:] + e[:-1])
            e = np.sort(np.concatenate([e, mid[bad[c]]]))
            if grow[c]:  # an end still carries density: one more panel beyond it
                lo_c, hi_c = grow[c]
                if lo_c:
                    e = np.concatenate([[max(e[0] - (e[1] - e[0]), 0.0)], e])
                if hi_c:
                    e = np.concatenate([e, [e[-1] + (e[-1] - e[-2])]])
            new_edges.append(e)
        edges = new_edges
        n_total = math.prod((e.size - 1) * npp for e in edges)
        if n_total > st.max_nodes:
            raise ExactIntegrationError(
                f"the quadrature over {what} would need more than {st.max_nodes:,} nodes to reach its accuracy "
                f"(estimated relative error {err:.1e}); use method='nuts'")
    raise ExactIntegrationError(
        f"the quadrature over {what} did not converge (estimated relative error {err:.1e} after "
        f"{st.max_refinements} refinements); use method='nuts'")


def _scale_a(u_peak, phi_hi):
    """``a`` of ``w = asinh(phi / a)``: a fiftieth of the top of the range (``w`` then spans at most
    ``asinh(50) = 4.6``), but between ``e^-2`` and 1 times the peak of the profile (so the peak is not squeezed
    into the linear zone when the range is much wider, e.g. a long tail under a nearly flat prior)."""
    peak = np.exp(u_peak)
    return np.clip(phi_hi / 50.0, peak * math.exp(-2.0), peak)


def _mode(logdens_u, box, lims, C):
    """Joint mode of the log density in ``u`` (a few Nelder-Mead steps from the box's centre)."""
    x0 = np.array([0.5 * (b[0] + b[1]) for b in box])
    lo = np.array([lm[0] for lm in lims])
    hi = np.array([lm[1] for lm in lims])

    def f(x):
        v = float(logdens_u(np.clip(x, lo, hi)[None, :])[0])
        return -v if np.isfinite(v) else 1e300

    try:
        res = optimize.minimize(f, x0, method="Nelder-Mead", options={"maxfev": 200 * C, "xatol": 1e-2,
                                                                     "fatol": 1e-3})
        return np.clip(res.x, lo, hi)
    except (ValueError, FloatingPointError):  # pragma: no cover - the grid passes find the mass anyway
        return x0


def _mesh(a, axes):
    """Nodes ``w`` and ``phi = a sinh(w)`` of the tensor product of ``axes`` (C order)."""
    mesh = np.meshgrid(*axes, indexing="ij")
    W = np.stack([m.ravel() for m in mesh], axis=1)
    return W, a * np.sinh(W)


def _evaluate_means(evaluate, a, axes, st, mean_map):
    """Log density in ``w`` and the checked means (``Y`` with ``mean_map``, else the targets' means) on the
    tensor product of ``axes``."""
    W, phi = _mesh(a, axes)
    N = W.shape[0]
    ld = np.full(N, -np.inf)
    Y = None
    mode = "coef" if mean_map is not None else "mean"
    for i in range(0, N, st.chunk):
        sl = slice(i, i + st.chunk)
        lp, m, _ = evaluate(phi[sl], mode)
        if Y is None:
            Y = np.zeros((N, m.shape[1]))
        with np.errstate(divide="ignore"):
            ld[sl] = lp + np.log(a * np.cosh(W[sl])).sum(1)
        Y[sl] = m
    return np.where(np.isfinite(ld), ld, -np.inf), Y


def _evaluate_rule(evaluate, a, edges, npp, C, st, mean_map=None) -> TensorRule:
    """The rule on ``edges``: log density and the checked means at every node (the targets' moments are
    added by :func:`_target_moments` once the rule has passed its checks)."""
    nodes, log_w = [], []
    for c in range(C):
        n, lw = _axis_rule(edges[c], npp)
        nodes.append(n)
        log_w.append(lw)
    ld, Y = _evaluate_means(evaluate, a, nodes, st, mean_map)
    lw = functools.reduce(np.add.outer, log_w).ravel()
    log_z = float(special.logsumexp(ld + lw))
    if not np.isfinite(log_z):
        raise ExactIntegrationError("the posterior of the variance components could not be evaluated on the "
                                    "quadrature grid; use method='nuts'")
    peak = np.unravel_index(int(np.argmax(ld)), tuple(x.size for x in nodes))
    _, phi_pk = _mesh(a, [n[[i]] for n, i in zip(nodes, peak)])
    _, m0, v0 = evaluate(phi_pk, True)
    return TensorRule(a=a, edges=edges, nodes=nodes, log_w=log_w, npp=npp, ld=ld, tm=None, tv=None, log_z=log_z,
                      error=math.nan, refinements=0, Y=Y, m0=m0[0], sc=np.sqrt(np.maximum(v0[0], 1e-300)))


def _target_moments(rule: TensorRule, evaluate, st, moments=None):
    """``rule.keep``: the nodes that carry mass (normalised log weight above :data:`KEEP_LOG`); ``rule.tm``,
    ``rule.tv``: ``moments`` there (by default the targets' conditional means and variances)."""
    lw = functools.reduce(np.add.outer, rule.log_w).ravel()
    keep = np.flatnonzero(rule.ld + lw - rule.log_z > KEEP_LOG)
    _, phi = _mesh(rule.a, rule.nodes)
    phi = phi[keep]
    tm, tv = [], []
    for i in range(0, keep.size, st.chunk):
        if moments is not None:
            m, v = moments(phi[i:i + st.chunk])
        else:
            _, m, v = evaluate(phi[i:i + st.chunk], True)
            m, v = m.T, v.T
        tm.append(m)
        tv.append(v)
    rule.keep, rule.tm, rule.tv, rule.Y = keep, np.concatenate(tm, axis=1), np.concatenate(tv, axis=1), None


def _check(rule: TensorRule, C: int, tol: float, evaluate=None, st=None, mean_map=None, others=None):
    """Per axis and panel: error estimates of the marginal density and the targets' first moments.

    The axis's full rule is compared with a rule of half its order on the same panels: a second
    Gauss-Legendre rule (new evaluations) when ``evaluate`` is given, else the interpolatory rule on a
    symmetric half of its nodes (a null rule: no new evaluations). ``d`` estimates the error of the
    half-order rule. With the second Gauss-Legendre rule the full rule's error is estimated as
    ``d min(1, 10 d / I)``, as in :mod:`ketabayes.inference._log_scale_quadrature` -- conservative for
    analytic integrands and still safe for a peak near a panel's end. The null rule has a quarter of the
    full rule's degree, so its ``d`` is far larger for analytic integrands and the estimate is
    ``d min(1, 10 (d / I)^3)``: 1e3-1e6 times the measured errors on the test matrix, but it can miss a
    peak near a panel's end (a coarser safeguard, used only above ``checked_components``).

    The second Gauss-Legendre rule is applied to the axis's marginal with the *other* axes integrated by
    the interpolatory rule on a symmetric half of their nodes (``others="subset"``, the default
    :data:`CHECK_OTHERS`): the full rule's values there are reused, and the new evaluations are a
    ``2^(C-1)``-th of those with the other axes' full rules (``others="full"``: half a grid per axis).
    Both rules of the comparison see the same coarser marginal, so ``d`` changes only by the second rule's
    response to the other axes' (smooth) integration error: on the robust test matrix and the benchmark
    designs the estimates of the panels that matter (above ``tol / 100``) are 0.69-1.16 times those with
    the full rules, and the decision uses :data:`SUBSET_MARGIN` times the estimate; the decisions, and
    hence the rules, are the same as with the full rules
    (``tests/test_exact_hierarchical_robust.py::test_subset_check_takes_the_full_checks_decisions``).

    The targets' first moments are linear in the checked means ``Y`` (``tm = Y @ mean_map``): the sums over
    the other axes are taken of ``Y`` and mapped afterwards.
    """
    others_rule = others or CHECK_OTHERS
    power = 1.0 if evaluate is not None else 3.0
    shape = tuple(n.size for n in rule.nodes)
    lw = functools.reduce(np.add.outer, rule.log_w).ravel()
    p = np.exp(rule.ld + lw - rule.log_z)  # normalised weights (sum 1)
    npp = rule.npp
    idx, wn = _null_weights(npp)
    _, wt = gauss_legendre(npp)
    bad, worst = [], 0.0
    P = p.reshape(shape)
    PY = (p[:, None] * rule.Y).reshape(*shape, -1)
    for c in range(C):
        others = tuple(a for a in range(C) if a != c)
        panels = rule.edges[c].size - 1
        half = 0.5 * np.diff(rule.edges[c])
        wc = np.exp(rule.log_w[c])
        mass = P.sum(axis=others)
        f = (mass / wc).reshape(panels, npp)  # marginal density at the nodes
        g = (_moments(PY.sum(axis=others), mass, rule, mean_map) / wc[:, None]).reshape(panels, npp, -1)
        i_full = half * (f @ wt)
        m_full = half[:, None] * np.einsum("pnt,n->pt", g, wt)
        margin = 1.0
        if evaluate is None:
            i_ref, m_ref = i_full, m_full
            i_half = half * (f[:, idx] @ wn)
            m_half = half[:, None] * np.einsum("pnt,n->pt", g[:, idx], wn)
        else:
            i_ref, m_ref, i_half, m_half = _half_order(rule, c, C, evaluate, st, mean_map, others_rule == "subset")
            if others_rule == "subset":
                margin = SUBSET_MARGIN
        d = np.abs(i_ref - i_half)
        dm = np.abs(m_ref - m_half).max(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(i_full > 0, np.minimum(1.0, 10.0 * (d / i_full) ** power), 1.0)
        err = margin * r * (d + dm)
        worst = max(worst, float(err.max()))
        bad.append(err > tol)
    return bad, worst


def _moments(sum_pY, mass, rule, mean_map):
    """``sum p (tm - m0) / sc`` over the other axes from ``sum p Y`` and ``sum p``."""
    tm = sum_pY @ mean_map if mean_map is not None else sum_pY
    return (tm - mass[:, None] * rule.m0) / rule.sc


def _half_order(rule: TensorRule, c: int, C: int, evaluate, st, mean_map=None, subset=False):
    """Per panel of axis ``c``: the mass and targets' first moments by the full rule and by the
    ``npp // 2``-point rule on that axis, the other axes integrated by their full rules, or (``subset``)
    by the interpolatory rules on a symmetric half of their nodes; normalised like the full rule."""
    npp, n2 = rule.npp, rule.npp // 2
    x2, w2 = gauss_legendre(n2)
    e = rule.edges[c]
    half = 0.5 * np.diff(e)
    nodes_c = ((0.5 * (e[1:] + e[:-1]))[:, None] + half[:, None] * x2[None, :]).ravel()
    logw_c = np.log((half[:, None] * w2[None, :]).ravel())
    shape = tuple(n.size for n in rule.nodes)
    others = tuple(x for x in range(C) if x != c)
    sub = [np.arange(n.size) for n in rule.nodes]
    logws = list(rule.log_w)
    if subset:
        idx, wn = _null_weights(npp)
        for o in others:
            panels_o = rule.edges[o].size - 1
            sub[o] = (np.arange(panels_o)[:, None] * npp + idx[None, :]).ravel()
            logws[o] = np.log((0.5 * np.diff(rule.edges[o])[:, None] * wn[None, :]).ravel())
    # the full rule on axis c (values of the grid)
    grid = np.ix_(*sub)
    ld_f = rule.ld.reshape(shape)[grid]
    p_f = np.exp(ld_f + functools.reduce(np.add.outer, [logws[o] if o != c else rule.log_w[c] for o in range(C)])
                 - rule.log_z)
    mass_f = p_f.sum(axis=others)
    mom_f = _moments((p_f[..., None] * rule.Y.reshape(*shape, -1)[grid]).sum(axis=others), mass_f, rule, mean_map)
    # the half-order rule on axis c (new evaluations)
    axes = [rule.nodes[o][sub[o]] for o in range(C)]
    axes[c] = nodes_c
    logws[c] = logw_c
    ld, Y = _evaluate_means(evaluate, rule.a, axes, st, mean_map)
    p = np.exp(ld + functools.reduce(np.add.outer, logws).ravel() - rule.log_z).reshape(tuple(a.size for a in axes))
    mass = p.sum(axis=others)
    mom = _moments((p[..., None] * Y.reshape(*p.shape, -1)).sum(axis=others), mass, rule, mean_map)
    return (mass_f.reshape(-1, npp).sum(1), mom_f.reshape(-1, npp, mom_f.shape[-1]).sum(1),
            mass.reshape(-1, n2).sum(1), mom.reshape(-1, n2, mom.shape[-1]).sum(1))


def _open_ends(rule: TensorRule, C: int, st, hard_lo, hard_hi):
    """Per axis, whether an end that is not a bound still carries density (then the box is extended)."""
    shape = tuple(n.size for n in rule.nodes)
    lw = functools.reduce(np.add.outer, rule.log_w).ravel()
    P = (rule.ld + lw - rule.log_z).reshape(shape)
    out = []
    for c in range(C):
        others = tuple(a for a in range(C) if a != c)
        lm = special.logsumexp(P, axis=others) - rule.log_w[c]  # log marginal density at the axis nodes
        top = float(np.max(lm))
        # the marginal (others summed) decays more slowly than the profile the box was cut on: an end is open
        # only when its density is well above the cut-off (then more than ~1e-10 of the mass may lie beyond)
        lim = top - 0.75 * st.mass_cutoff
        lo = (not hard_lo[c]) and rule.edges[c][0] > 0.0 and lm[0] + math.log(rule.edges[c][0]) > lim
        hi = (not hard_hi[c]) and lm[-1] > lim
        out.append((lo, hi) if (lo or hi) else False)
    return out


def _one_component(evaluate, box, lims, hard, prior_pts, st, what) -> TensorRule:
    """One component: the normal-normal engine's checked rule (:func:`integrate_log_scale`) in ``w``."""
    a = math.exp(box[0] - 3.0)  # log-like over the whole range of the scan
    qs = QuadratureSettings(mass_cutoff=st.mass_cutoff, check_tol=st.check_tol[0],
                            max_refinements=st.max_refinements)

    def logdens(w):
        w = np.asarray(w, dtype=float)
        phi = a * np.sinh(w)
        lp, m, v = evaluate(phi[:, None], True)
        with np.errstate(divide="ignore"):
            lp = lp + np.log(a * np.cosh(w))
        return np.where(np.isfinite(lp), lp, -np.inf), m[:, 0], v[:, 0]

    def w_of(u):
        return math.asinh(min(math.exp(u), 1e300) / a)

    lo = 0.0 if hard[0] == -math.inf or lims[0] <= U_MIN else w_of(lims[0])
    hi = w_of(lims[1])
    scan = [w_of(u) for u in np.arange(box[0], box[1] + 1.0, 1.0)] + [w_of(u) for u in prior_pts]
    scan = np.clip(np.unique(scan), lo, hi)
    rule = integrate_log_scale(logdens, lo, hi, True, hard[1] < math.inf and hard[1] <= lims[1], scan, qs,
                               what=what)
    log_w = np.log((0.5 * np.diff(rule.edges)[:, None] * rule.w[None, :]).ravel())
    return TensorRule(a=np.array([a]), edges=[rule.edges], nodes=[rule.u], log_w=[log_w], npp=rule.x.size,
                      ld=rule.log_weights + rule.log_z - log_w, tm=None, tv=None, log_z=rule.log_z, error=math.nan,
                      refinements=0)
