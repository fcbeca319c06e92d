"""Normal-kernel mixtures, units' own effects and conditional draws for the exact binomial engines.

Shared by :mod:`ketabayes.inference.exact_binomial` (no grouping),
:mod:`ketabayes.inference.exact_binomial_grouped` (one grouping),
:mod:`ketabayes.inference.exact_binomial_regression` (one moderator),
:mod:`ketabayes.inference.exact_binomial_mixed` (both) and
:mod:`ketabayes.inference.exact_binomial_nested` (nested groupings).

**A unit's own effect** (a trial's log odds ratio ``theta_i``, or a group's mean effect
``gamma_g`` in the grouped engine) is given, for every node ``tau_j`` of the outer rule,
by its *centre* ``m`` (``mu``, the group effect, or ``mu + x_i' gamma``) and its own
likelihood curve ``f_i``::

    p(theta_i | tau, y) = f_i(theta_i) int N(theta_i; m, tau**2) p(m | tau, y_-i) dm,
    p(m | tau, y_-i)    = p(m | tau, y) / h_i(m, tau),   h_i(m, tau) = int N(theta; m, tau**2) f_i(theta) dtheta

(``y_-i``: the data without unit ``i``). :func:`unit_effect` evaluates the centre's
posterior ``p(m | tau, y)`` (a normal mixture) on a uniform grid, divides by ``h_i``
(the unit's data removed), represents that *cavity* density by normal kernels
(:func:`kernel`), convolves them with ``N(0, tau**2)`` in closed form and multiplies by
``f_i`` on a uniform grid of ``theta_i``, which is again represented by normal kernels.
The kernels are at least as wide as the grid spacing, so the mixture has no ripple even
when ``tau`` is near 0 (where ``theta_i`` given ``m`` is nearly a point mass); a mixture
over the raw quadrature nodes of ``m`` would be a comb of narrow normals there.

**Conditional draws** (:func:`draw_log_concave`): one exact draw from each of many
log-concave one-dimensional densities known up to a constant (e.g. ``theta_i`` given its
centre and ``tau``: ``N(theta; m, tau**2) f_i(theta)`` is log-concave, as ``f_i`` is the
integral of a log-concave function of ``(b, theta)``), by rejection from the hull of three
tangents of the log density. Used to draw every unit's effect jointly with the other
parameters.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["compress", "draw_log_concave", "kernel", "mixture_logpdf", "unit_effect"]

_LOG_2PI = math.log(2.0 * math.pi)
#: uniform grid of a unit's centre given tau (in sds of the centre's posterior): half-width and step
_C_HALF, _C_STEP = 10.0, 0.1
#: uniform grid of a unit's own effect given tau (in sds of its Laplace approximation)
_E_HALF, _E_STEP = 10.0, 0.125
#: the grid must end this far (log density) below its maximum
_EDGE = 30.0


@functools.lru_cache(maxsize=4)
def hermite(n: int):
    """Gauss-Hermite nodes and log weights for ``int g(x) exp(-x**2) dx`` (cached)."""
    x, w = np.polynomial.hermite.hermgauss(n)
    x.flags.writeable = False
    lw = np.log(w)
    lw.flags.writeable = False
    return x, lw


def lse(x):
    """``log(sum(exp(x), axis=-1))`` (the values are finite; faster than scipy's general version here)."""
    top = x.max(-1)
    return np.log(np.exp(x - top[..., None]).sum(-1)) + top


def kernel(cond, x, spacing):
    """Normal-kernel representation of densities known on uniform grids (one per row).

    ``cond (N, J)``: normalised log weights of the trapezoid rule at the nodes ``x (N, J)``
    of spacing ``spacing (N,)``. Returns log weights ``(N, J)`` (each row normalised) and
    the kernel sd ``h (N,)`` such that ``sum_j w_j N(.; x_j, h**2)`` is the row's density.
    Writing the density as ``N(m, s**2) r`` (``m, s`` its moments), the weights are those of
    ``N(m, s**2 - h**2) r~`` with ``log r~ = log r + (h/s)**2 (x - m) (log r)' - h**2 ((log r)'' +
    (log r)'**2) / 2`` (derivatives by finite differences; the log form of ``r~ = r + (h/s)**2 (x - m)
    r' - h**2 r'' / 2``, which keeps the tails positive): the kernel's convolution then returns the
    density up to ``O(h**4)``. Finally the weights are tilted, ``w_j exp(a u_j + b u_j**2)`` with
    ``u = (x - m) / s`` (two Newton steps), so that the mixture's mean and variance are exactly the
    density's (``sum w x = m``, ``sum w (x - m)**2 + h**2 = s**2``): the remaining error is in the shape only.
    """
    wc = np.exp(cond)
    m = (wc * x).sum(1)
    v = (wc * (x - m[:, None]) ** 2).sum(1)
    h2 = np.minimum(spacing**2, 0.5 * v)
    dev = (x - m[:, None]) ** 2
    lr = cond + 0.5 * dev / v[:, None]
    d1 = np.gradient(lr, axis=1) / spacing[:, None]
    d2 = np.gradient(d1, axis=1) / spacing[:, None]
    corr = (h2 / v)[:, None] * (x - m[:, None]) * d1 - 0.5 * h2[:, None] * (d2 + d1**2)
    kc = cond - 0.5 * dev / (v - h2)[:, None] + 0.5 * dev / v[:, None] + corr
    # moment matching by an exponential tilt
    u = (x - m[:, None]) / np.sqrt(v)[:, None]
    f = np.stack([u, u * u], axis=-1)
    target = np.stack([np.zeros_like(m), (v - h2) / v], axis=1)
    a = np.zeros((x.shape[0], 2))
    for _ in range(3):
        lw = kc + (f @ a[..., None])[..., 0]
        w = np.exp(lw - lse(lw)[:, None])
        ef = np.einsum("nj,njk->nk", w, f)
        dv = f - ef[:, None, :]
        cov = np.einsum("nj,njk,njl->nkl", w, dv, dv)
        a = a - np.linalg.solve(cov, (ef - target)[..., None])[..., 0]
    kc = kc + (f @ a[..., None])[..., 0]
    return kc - lse(kc)[:, None], np.sqrt(h2)


def compress(w, m, s, log_sd_step: float = 0.1, mean_step: float = 0.25):
    """Merge the components of a normal mixture that are nearly the same normal.

    Components are binned by ``log(sd)`` (width ``log_sd_step``) and, within that, by mean
    (width ``mean_step`` x the larger of the bin's sd and a fifth of the mixture's sd, i.e. at
    most 0.05 sd of the whole mixture); each bin becomes one normal with the bin's weight,
    mean and variance (mixture moments). The first two moments of the mixture are kept
    exactly; as the merged components differ by at most 10% in sd and 0.25 sd in mean, the
    shape changes by far less than the quadrature error (CDF changes < 1e-4 in the tests).
    """
    w, m, s = (np.asarray(x, dtype=float) for x in (w, m, s))
    keep = w > 1e-14 * w.sum()
    w, m, s = w[keep], m[keep], s[keep]
    total_sd = math.sqrt(max(float(np.sum(w * (s**2 + m**2)) / w.sum() - (np.sum(w * m) / w.sum()) ** 2), 1e-300))
    ls = np.floor(np.log(s) / log_sd_step)
    ref = np.maximum(np.exp((ls + 0.5) * log_sd_step), 0.2 * total_sd)
    mb = np.floor(m / (mean_step * ref))
    ls, mb = (ls - ls.min()).astype(np.int64), (mb - mb.min()).astype(np.int64)
    _, inv = np.unique(ls * (int(mb.max()) + 1) + mb, return_inverse=True)
    W = np.bincount(inv, w)
    M = np.bincount(inv, w * m) / W
    V = np.bincount(inv, w * (s**2 + m**2)) / W - M**2
    return W, M, np.sqrt(np.maximum(V, np.bincount(inv, w * s**2) / W * 0.999))


def mixture_logpdf(w, m, s, x):
    """Log density at ``x (..., J)`` of normal mixtures with normalised weights ``w (..., C)`` (components ``m, s``).

    Leading axes are batch axes (one mixture per row); weights of 0 are padding. Summed in linear
    space (one exponential per pair): values more than 600 log units below a row's largest term
    are returned as that bound.
    """
    x = np.asarray(x, dtype=float)
    z = (x[..., :, None] - m[..., None, :]) / s[..., None, :]
    z *= z
    z *= -0.5
    np.exp(z, out=z)
    c = w / s
    scale = c.max(-1, keepdims=True)
    dens = np.einsum("...jc,...c->...j", z, c / scale)
    with np.errstate(divide="ignore"):
        out = np.log(dens) + np.log(scale) - 0.5 * _LOG_2PI
    top = out.max(-1, keepdims=True)
    return np.maximum(out, top - 600.0)


def _row_moments(w, x, s2=0.0):
    """Mean and sd of each row's mixture (weights ``w (N, J)`` normalised, means ``x``, variances ``s2``)."""
    mean = (w * x).sum(-1)
    return mean, np.sqrt(np.maximum((w * ((x - mean[:, None]) ** 2 + s2)).sum(-1), 1e-300))


def _pad(mixtures):
    """Mixtures of different sizes as arrays ``(J, C)`` (weights normalised per row, padding with weight 0)."""
    size = max(np.size(w) for w, _, _ in mixtures)
    W, M, S = np.zeros((len(mixtures), size)), np.zeros((len(mixtures), size)), np.ones((len(mixtures), size))
    for j, (w, m, s) in enumerate(mixtures):
        w = np.asarray(w, dtype=float)
        W[j, :w.size] = w / w.sum()
        M[j, :w.size], S[j, :w.size] = m, s
    return W, M, S


def unit_effect(curves, i: int, taus, log_w, centres, *, on_grid: bool = False):
    """Normal mixture of unit ``i``'s own effect: ``sum_j exp(log_w[j]) p(theta_i | taus[j], y)``.

    Parameters
    ----------
    curves : ExactBinomial
        Holds the units' likelihood curves ``log f_i`` (``_spline(x, unit=i)``, their Laplace fits
        ``y_hat, v_hat``) and ``_unit_log_h(i, m, tau)`` = ``log h_i(m, tau)``.
    i : int
        The unit.
    taus, log_w : array_like, shape (J,)
        Nodes of the outer rule over the unit's between-unit SD and their normalised log weights.
    centres : sequence of (w, m, s), or array pair (log_w, x)
        For every node, the posterior of the unit's centre given ``taus[j]`` and all data as a
        normal mixture (weights need not be normalised); with ``on_grid``, as normalised log weights
        of the trapezoid rule ``log_w (J, G)`` on uniform grids ``x (J, G)`` (one per node).

    Returns
    -------
    w, m, s : ndarray
        Weights, means and sds of the mixture (see the module docstring).

    Examples
    --------
    :meth:`ExactBinomial.theta <ketabayes.inference.exact_binomial.ExactBinomial.theta>` is this
    function with ``mu``'s slices as the centres:

    >>> import numpy as np
    >>> from ketabayes.inference.exact_binomial import ExactBinomial
    >>> from ketabayes.model.priors import HalfNormal, Normal
    >>> post = ExactBinomial([1, 0, 9], [40, 22, 135], [2, 1, 23], [36, 21, 135], Normal(0, 2), HalfNormal(0.5),
    ...                      Normal(0, 5), np.ones((1, 1)), np.zeros((1, 1), bool))
    >>> bertschat = post.theta(1)                  # 0/22 vs 1/21: shrunk towards the average effect
    >>> bool(post.marginal(0).mean - 0.3 < bertschat.mean < post.marginal(0).mean + 0.3)
    True
    """
    taus, log_w = np.asarray(taus, dtype=float), np.asarray(log_w, dtype=float)
    t2 = taus[:, None] ** 2
    # 1. the cavity p(m | tau, y_-i) on a uniform grid, as normal kernels
    if on_grid:
        lp, g = (np.asarray(v, dtype=float) for v in centres)
        spacing = g[:, 1] - g[:, 0]
    else:
        CW, CM, CS = _pad(centres)
        mean, sd = _row_moments(CW, CM, CS**2)
        j_c = np.arange(-_C_HALF / _C_STEP, _C_HALF / _C_STEP + 0.5) * _C_STEP
        g = mean[:, None] + sd[:, None] * j_c
        lp, spacing = mixture_logpdf(CW, CM, CS, g), sd * _C_STEP
    lp = lp - curves._unit_log_h(i, g, np.broadcast_to(taus[:, None], g.shape))
    kc, h = kernel(lp - lse(lp)[:, None], g, spacing)
    kw = np.exp(kc)
    q_mean, q_sd = _row_moments(kw, g, h[:, None] ** 2)
    # 2. p(theta_i | tau, y) = f_i(theta) int N(theta; m, tau^2) cavity(m) dm on a uniform grid
    qs = np.broadcast_to(np.sqrt(h[:, None] ** 2 + t2), g.shape)
    yh, vh = float(curves.y_hat[i]), float(curves.v_hat[i])
    prec = 1.0 / (q_sd**2 + taus**2) + 1.0 / vh
    cen, esd = (q_mean / (q_sd**2 + taus**2) + yh / vh) / prec, 1.0 / np.sqrt(prec)
    j_e = np.arange(-_E_HALF / _E_STEP, _E_HALF / _E_STEP + 0.5) * _E_STEP
    th, cond = np.empty((taus.size, j_e.size)), np.empty((taus.size, j_e.size))
    todo = np.arange(taus.size)
    for _ in range(6):
        x = cen[todo, None] + esd[todo, None] * j_e
        ld = curves._spline(x, unit=i) + mixture_logpdf(kw[todo], g[todo], qs[todo], x)
        top = ld.max(1)
        edges_ok = (ld[:, 0] < top - _EDGE) & (ld[:, -1] < top - _EDGE)
        th[todo], cond[todo] = x, ld - lse(ld)[:, None]
        c_new, s_new = _row_moments(np.exp(cond[todo]), x)
        ok = edges_ok & (s_new > 0.5 * esd[todo]) & (s_new < 2.0 * esd[todo])
        cen[todo] = c_new
        esd[todo] = np.where(edges_ok, s_new, 1.5 * np.maximum(s_new, esd[todo]))
        todo = todo[~ok]
        if todo.size == 0:
            break
    spacing = th[:, 1] - th[:, 0]
    kt, ht = kernel(cond, th, spacing)
    return (np.exp(log_w[:, None] + kt).ravel(), th.ravel(), np.broadcast_to(ht[:, None], th.shape).ravel())


# ---------------------------------------------------------------------- conditional draws
#: tangent points of the rejection envelope, in sds of the Laplace approximation around its centre
_TANGENTS = np.array([-1.8, 0.0, 1.8])


def draw_log_concave(logdens, cen, sd, rng: np.random.Generator, max_rounds: int = 60) -> np.ndarray:
    """One exact draw from each of many log-concave one-dimensional densities (rejection sampling).

    Parameters
    ----------
    logdens : callable
        ``logdens(x, idx)``: the log densities number ``idx`` (indices into the flattened ``cen``) at
        ``x (len(idx), J)``, and their first derivatives there (two arrays of that shape).
    cen, sd : ndarray
        Centre and sd of each density's Laplace approximation (any shape, the same).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape of ``cen``

    Notes
    -----
    The envelope is the upper hull of the tangents of the (concave) log density at
    ``cen + sd * (-1.8, 0, 1.8)`` -- a piecewise exponential density, sampled by inversion;
    a proposal ``x`` is kept with probability ``exp(log p(x) - hull(x))`` (Gilks & Wild 1992,
    doi:10.2307/2347565, without the adaptive step). About three of four proposals are kept for a
    normal density (fewer tangents than that cost more than the rejections they save); the rejected
    ones are proposed again.

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_binomial_kernels import draw_log_concave
    >>> logdens = lambda x, idx: (-0.5 * x**2, -x)          # standard normal densities
    >>> x = draw_log_concave(logdens, np.zeros(20000), np.ones(20000), np.random.default_rng(1))
    >>> bool(abs(x.mean()) < 0.03 and abs(x.std() - 1.0) < 0.02)
    True
    """
    cen, sd = np.asarray(cen, dtype=float), np.asarray(sd, dtype=float)
    shape = cen.shape
    cen, sd = cen.ravel(), sd.ravel()
    t = cen[:, None] + sd[:, None] * _TANGENTS
    every = np.arange(cen.size)
    lt, dt = (np.asarray(v, dtype=float) for v in logdens(t, every))
    top = lt.max(1, keepdims=True)
    lt = lt - top
    # slopes must decrease (concavity); keep the hull well defined where a spline wiggles
    dt = np.minimum.accumulate(dt, axis=1) - 1e-12 * np.arange(_TANGENTS.size)
    dt[:, 0] = np.maximum(dt[:, 0], 1e-300 / np.maximum(sd, 1e-300))
    dt[:, -1] = np.minimum(dt[:, -1], -1e-300 / np.maximum(sd, 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (lt[:, 1:] - lt[:, :-1] - t[:, 1:] * dt[:, 1:] + t[:, :-1] * dt[:, :-1]) / (dt[:, :-1] - dt[:, 1:])
    z = np.where(np.isfinite(z), z, 0.5 * (t[:, 1:] + t[:, :-1]))
    z = np.clip(z, t[:, :-1], t[:, 1:])
    lo = np.concatenate([np.full((cen.size, 1), -np.inf), z], axis=1)
    hi = np.concatenate([z, np.full((cen.size, 1), np.inf)], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        la = np.where(np.isfinite(lo), lt + dt * (lo - t), -np.inf)
        lb = np.where(np.isfinite(hi), lt + dt * (hi - t), -np.inf)
        mass = (np.exp(lb) - np.exp(la)) / dt
    mass = np.where(np.isfinite(mass) & (mass > 0.0), mass, 0.0)
    cum = np.cumsum(mass, axis=1)
    out = np.empty(cen.size)
    todo = np.arange(cen.size)
    for _ in range(max_rounds):
        n = todo.size
        u = rng.uniform(size=n) * cum[todo, -1]
        piece = np.minimum((cum[todo] < u[:, None]).sum(1), _TANGENTS.size - 1)
        r = u - (cum[todo, piece] - mass[todo, piece])
        s_, t_, l_ = dt[todo, piece], t[todo, piece], lt[todo, piece]
        a, b = lo[todo, piece], hi[todo, piece]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # invert exp(l_ + s_ (x - t_)) integrated from a: from the finite end of the piece
            from_a = a + np.log1p(s_ * r * np.exp(-(l_ + s_ * (a - t_)))) / s_
            from_b = b + np.log1p(-s_ * (mass[todo, piece] - r) * np.exp(-(l_ + s_ * (b - t_)))) / s_
        x = np.where(np.isfinite(a), from_a, from_b)
        x = np.where(np.isfinite(x), x, t_)
        hull = l_ + s_ * (x - t_)
        lx = np.asarray(logdens(x[:, None], todo)[0], dtype=float)[:, 0] - top[todo, 0]
        keep = np.log(rng.uniform(size=n)) <= lx - hull
        out[todo[keep]] = x[keep]
        todo = todo[~keep]
        if todo.size == 0:
            return out.reshape(shape)
    raise FloatingPointError("rejection sampling of a conditional effect did not converge")  # pragma: no cover
