"""Checked quadrature over a log-scale parameter (``u = log(tau)``) for the exact engines.

:func:`integrate_log_scale` places and checks a composite Gauss-Legendre rule for an
unnormalised posterior density in ``u``: scan, bisection where the log density
changes fast (a peak of any width is resolved), extension until the density and the
extrapolated tail mass are negligible, panels of bounded change of the log density,
and a per-panel comparison of the 16- and 8-point rules with automatic splitting.
See :mod:`ketabayes.inference.exact` for how the normal-normal model uses it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import special

from ketabayes.errors import ExactIntegrationError

__all__ = ["LogScaleRule", "QuadratureSettings", "integrate_log_scale", "gauss_legendre"]


@functools.lru_cache(maxsize=8)
def gauss_legendre(n: int):
    """Gauss-Legendre nodes and weights on [-1, 1] (cached: computing them takes ~0.3 ms)."""
    x, w = special.roots_legendre(n)
    x.flags.writeable = w.flags.writeable = False
    return x, w


@dataclass(frozen=True)
class QuadratureSettings:
    """Settings of the integration over ``u = log(tau)`` (on the standardised scale).

    The interval is placed from the prior and the likelihood: a scan of the log
    density covers the range where the likelihood varies (from well below the
    smallest to well above the largest within-study standard deviation and the
    spread of the estimates) and the prior's central ``1 - 2e-12`` mass. The scan
    is refined by bisection wherever neighbouring values differ by more than
    ``resolve`` (so a narrow peak is resolved however sharp), then extended
    outwards until the log density has fallen ``mass_cutoff`` below its maximum
    and the estimated mass beyond each end is below ``tail_tol``. Panels are
    unions of scan intervals over which the log density changes by at most
    ``panel_change`` (``tail_change`` far from the peak) and whose width is at
    most ``panel_width`` (``tail_width``). On every panel the ``nodes_per_panel``-point
    Gauss-Legendre rule is checked against a rule of half the order, for the
    density and for the density times the conditional mean of ``mu``; panels that
    fail ``check_tol`` are split, at most ``max_refinements`` times.

    Attributes
    ----------
    nodes_per_panel : int
    scan_step : float
    resolve : float
    mass_cutoff : float
    tail_tol : float
    panel_change, tail_change : float
    panel_width, tail_width : float
    check_tol : float
    max_refinements : int
    """

    nodes_per_panel: int = 16
    scan_step: float = 1.0
    resolve: float = 1.0
    mass_cutoff: float = 32.0
    tail_tol: float = 1e-13
    panel_change: float = 6.0
    tail_change: float = 14.0
    panel_width: float = 1.0
    tail_width: float = 4.0
    check_tol: float = 1e-9
    max_refinements: int = 8

    def to_dict(self):
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict | None) -> QuadratureSettings:
        """Settings from a dict; keys of older versions of the engine are ignored."""
        d = d or {}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})



class LogScaleRule(NamedTuple):
    """A quadrature rule in ``u``: panel ``edges``, nodes ``u`` (``-inf`` first when ``atom > 0``),
    normalised ``log_weights``, the log normalising constant ``log_z``, the mass ``atom`` below
    the range, and the per-panel Gauss-Legendre nodes and weights ``x, w`` on [-1, 1]."""

    edges: np.ndarray
    u: np.ndarray
    log_weights: np.ndarray
    log_z: float
    atom: float
    x: np.ndarray
    w: np.ndarray


def integrate_log_scale(logdens, lo: float, hi: float, lo_hard: bool, hi_hard: bool, scan, settings,
                        *, lower_atom=None, what: str = "tau") -> LogScaleRule:
    """Checked composite Gauss-Legendre rule for a posterior density in ``u`` on ``[lo, hi]``.

    Parameters
    ----------
    logdens : callable
        ``logdens(u) -> (log density, m, var)`` for an array of ``u``: the unnormalised log
        density and the conditional mean and variance of the target checked with it.
    lo, hi : float
        Range of ``u``; ``lo_hard`` / ``hi_hard`` say whether an end is a bound of the
        prior's support (then no mass lies beyond it).
    scan : array
        Initial scan points in ``[lo, hi]``.
    settings : QuadratureSettings
    lower_atom : callable, optional
        ``lower_atom() -> log weight`` of the mass below ``lo`` when the density has
        not decayed there (``-inf`` if it cannot be given).
    what : str
        Name of the density in error messages.

    Raises
    ------
    ExactIntegrationError
    """
    st = settings
    g = np.unique(np.asarray(scan, dtype=float))
    lg = logdens(g)[0]
    # extend outwards until the log density has fallen mass_cutoff below its maximum
    for _ in range(60):
        top = float(np.max(lg))
        if not np.isfinite(top):
            break
        ext = []
        for end, side in ((0, -1), (-1, 1)):
            if lg[end] > top - st.mass_cutoff or (lg.size > 1 and _tail_mass(g, lg, end, top) > st.tail_tol):
                lim = lo if side < 0 else hi
                if g[end] != lim:
                    w = max(abs(g[-1] - g[0]), 4.0)
                    new = g[end] + side * w
                    new = max(new, lo) if side < 0 else min(new, hi)
                    ext.append(np.linspace(g[end], new, max(3, math.ceil(abs(new - g[end]) / st.scan_step) + 1))[1:])
        if not ext:
            break
        ne = np.concatenate(ext)
        g, lg = _merge(g, lg, ne, logdens(ne)[0])
    top = float(np.max(lg))
    if not np.isfinite(top):
        raise ExactIntegrationError(f"the posterior of {what} could not be evaluated (non-finite density); "
                                "check the data and the prior, or fit with method='nuts'")
    # resolve: bisect wherever neighbouring values differ by more than `resolve` near the peak
    for _ in range(80):
        top = float(np.max(lg))
        rel = np.maximum(lg[:-1], lg[1:]) > top - st.mass_cutoff
        d = np.abs(np.diff(lg))
        bad = rel & ((d > st.resolve) | ~np.isfinite(d))
        bad &= np.diff(g) > 1e-12 * np.maximum(1.0, np.abs(g[:-1]))
        if not bad.any():
            break
        j = np.flatnonzero(bad)
        ne = (g[j, None] + np.diff(g)[j, None] * np.array([0.25, 0.5, 0.75])).ravel()
        g, lg = _merge(g, lg, ne, logdens(ne)[0])
    top = float(np.max(lg))
    # keep the region where the density is within mass_cutoff (one scan point beyond)
    idx = np.flatnonzero(lg > top - st.mass_cutoff)
    a_i, b_i = max(idx[0] - 1, 0), min(idx[-1] + 1, g.size - 1)
    log_atom = -np.inf
    if g[a_i] == lo and not lo_hard and lg[a_i] > top - st.mass_cutoff:
        # prior mass below the smallest representable tau: there the likelihood equals its value at
        # tau = 0 (to exp(-30)), so that mass is a component at tau = 0 weighted by the prior's CDF
        if lower_atom is not None:
            log_atom = float(lower_atom())
    for end, at_lim in ((a_i, g[a_i] == lo and not lo_hard and not np.isfinite(log_atom)),
                        (b_i, g[b_i] == hi and not hi_hard)):
        if at_lim and lg[end] > top - st.mass_cutoff + 2.0 and _tail_mass(g, lg, end, top) > 1e-8:
            where = "zero" if end == a_i else "infinity"
            raise ExactIntegrationError(
                f"the posterior of {what} does not decay towards {where} within the range the exact engine "
                "can represent (is it improper?); use a proper prior or method='nuts'")
    g, lg = g[a_i:b_i + 1], lg[a_i:b_i + 1]
    edges, core = _panels(g, lg, top, st)
    x, w = gauss_legendre(st.nodes_per_panel)
    x2, w2 = gauss_legendre(st.nodes_per_panel // 2)
    xx = np.concatenate([x, x2])
    n1 = x.size
    lo_e, hi_e = edges[:-1], edges[1:]
    ld = np.empty((0, xx.size))
    m = np.empty((0, xx.size))
    new = np.ones(lo_e.size, bool)
    sc = None
    for it in range(st.max_refinements + 1):
        # evaluate only the new panels; the check rule only on the core panels (tail panels hold
        # less than exp(-20) of the mass per unit of log tau: their error cannot matter)
        nc, nt = new & core, new & ~core
        ld_all = np.full((lo_e.size, xx.size), -np.inf)
        m_all = np.zeros((lo_e.size, xx.size))
        for sel, nodes in ((nc, xx), (nt, x)):
            if sel.any():
                half_n = 0.5 * (hi_e[sel] - lo_e[sel])
                uu = (0.5 * (hi_e[sel] + lo_e[sel]))[:, None] + half_n[:, None] * nodes[None, :]
                ldn, mn, _ = logdens(uu.ravel())
                ld_all[sel, :nodes.size], m_all[sel, :nodes.size] = ldn.reshape(uu.shape), mn.reshape(uu.shape)
        ld_all[~new], m_all[~new] = ld, m
        ld, m = ld_all, m_all
        half = 0.5 * (hi_e - lo_e)
        ref = float(np.max(ld[:, :n1]))
        f = np.exp(ld - ref)
        peak = np.unravel_index(np.argmax(ld[:, :n1]), (half.size, n1))
        mc = m - m[peak]
        if sc is None:
            u_pk = 0.5 * (hi_e + lo_e)[peak[0]] + half[peak[0]] * x[peak[1]]
            sc = math.sqrt(max(float(logdens(np.array([u_pk]))[2][0]), 1e-300))
        i1 = half[:, None] * w * f[:, :n1]
        i2 = half[:, None] * w2 * f[:, n1:]
        z = i1.sum()
        # |G16 - G8| estimates the error of the 8-point rule; for an integrand analytic near the panel
        # the error of the 16-point rule is about its square (relative to the panel), so the estimate
        # is |G16 - G8| * min(1, 10 |G16 - G8| / G16) (the factor 10 for safety)
        p1 = i1.sum(1)
        d = np.abs(p1 - i2.sum(1))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(p1 > 0, np.minimum(1.0, 10.0 * d / p1), 1.0)
        err = r * (d + np.abs((i1 * mc[:, :n1]).sum(1) - (i2 * mc[:, n1:]).sum(1)) / sc)
        bad = (err > st.check_tol * z) & core
        if not bad.any():
            break
        if it == st.max_refinements:
            raise ExactIntegrationError(
                f"the quadrature over {what} did not converge (relative error {float(err.max() / z):.1e} "
                f"after {st.max_refinements} refinements); use method='nuts'")
        mid = 0.5 * (lo_e + hi_e)
        keep = ~bad
        lo_e = np.concatenate([lo_e[keep], lo_e[bad], mid[bad]])
        hi_e = np.concatenate([hi_e[keep], mid[bad], hi_e[bad]])
        ld, m = ld[keep], m[keep]
        new = np.concatenate([np.zeros(keep.sum(), bool), np.ones(2 * bad.sum(), bool)])
        core = np.concatenate([core[keep], core[bad], core[bad]])
        o = np.argsort(lo_e, kind="stable")
        lo_e, hi_e, new, core = lo_e[o], hi_e[o], new[o], core[o]
        # the cached rows (kept panels) keep their sorted order among the new ones
    half = 0.5 * (hi_e - lo_e)
    u = ((0.5 * (hi_e + lo_e))[:, None] + half[:, None] * x[None, :]).ravel()
    edges = np.append(lo_e, hi_e[-1])
    lw = np.log((half[:, None] * w[None, :]).ravel())
    logw = ld[:, :n1].ravel() + lw
    if np.isfinite(log_atom):
        u = np.concatenate([[-np.inf], u])
        logw = np.concatenate([[log_atom], logw])
    log_z = float(special.logsumexp(logw))
    return LogScaleRule(edges=edges, u=u, log_weights=logw - log_z, log_z=log_z,
                        atom=float(np.exp(log_atom - log_z)), x=x, w=w)


def _merge(g, lg, ne, lne):
    gg = np.concatenate([g, ne])
    o = np.argsort(gg, kind="stable")
    gg, ll = gg[o], np.concatenate([lg, lne])[o]
    keep = np.concatenate([[True], np.diff(gg) > 0])
    return gg[keep], ll[keep]

def _tail_mass(g, lg, end, top):
    """Mass beyond the end of the grid relative to the peak (exponential extrapolation of the last step)."""
    j = 1 if end == 0 else -2
    if not np.isfinite(lg[end]):
        return 0.0
    slope = (lg[j] - lg[end]) / abs(g[j] - g[end])
    if not slope > 0:
        return math.inf
    return math.exp(lg[end] - top) / slope

def _panels(g, lg, top, st):
    """Merge scan intervals into panels of bounded width and bounded change of the log density."""
    gl, ll = g.tolist(), lg.tolist()
    edges = [gl[0]]
    core = []
    lo_v = hi_v = ll[0]
    core_lim = top - 20.0
    for j in range(1, len(gl)):
        x = ll[j]
        lo_v2 = lo_v if lo_v < x else x
        hi_v2 = hi_v if hi_v > x else x
        if hi_v2 < core_lim:
            change, width = st.tail_change, st.tail_width
        else:
            change, width = st.panel_change, st.panel_width
        if (hi_v2 - lo_v2 > change or gl[j] - edges[-1] > width) and gl[j - 1] > edges[-1]:
            edges.append(gl[j - 1])
            core.append(hi_v >= core_lim)
            lo_v, hi_v = min(ll[j - 1], x), max(ll[j - 1], x)
        else:
            lo_v, hi_v = lo_v2, hi_v2
    if gl[-1] > edges[-1]:
        edges.append(gl[-1])
        core.append(hi_v >= core_lim)
    return np.asarray(edges), np.asarray(core, dtype=bool)
