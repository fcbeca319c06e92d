"""MCMC diagnostics: divergences, R-hat and ESS, reported, warned about, or raised.

Thresholds follow Vehtari et al. (2021), doi:10.1214/20-BA1221: R-hat <= 1.01 and
bulk/tail ESS >= 400 (100 per chain for 4 chains); any divergence is reported.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from ketabayes.errors import ConvergenceError, ConvergenceWarning

__all__ = ["Diagnostics", "check_convergence"]


@dataclass
class Diagnostics:
    """Convergence summary of one NUTS fit."""

    divergences: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    rhat_max: float = 1.01
    ess_min: float = 400.0
    n_draws: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def __str__(self) -> str:
        status = "ok" if self.ok else "PROBLEMS: " + "; ".join(self.problems)
        return (f"divergences={self.divergences}, max R-hat={self.max_rhat:.4f}, "
                f"min bulk ESS={self.min_ess_bulk:.0f}, min tail ESS={self.min_ess_tail:.0f} ({status})")


def _max(ds) -> float:
    vals = [np.nanmax(ds[v].values) for v in ds.data_vars if ds[v].size]
    return float(max(vals)) if vals else float("nan")


def _min(ds) -> float:
    vals = [np.nanmin(ds[v].values) for v in ds.data_vars if ds[v].size]
    return float(min(vals)) if vals else float("nan")


def check_convergence(tree, var_names=None, *, rhat_max: float = 1.01, ess_min: float = 400.0,
                      strict: bool = False, warn: bool = True) -> Diagnostics:
    """Compute and check divergences, rank-normalised R-hat and bulk/tail ESS.

    Parameters
    ----------
    tree : xarray.DataTree
        Output of PyMC sampling (``posterior`` and ``sample_stats`` groups).
    var_names : list of str, optional
        Variables to check (default: all in the posterior).
    rhat_max, ess_min : float
        Thresholds.
    strict : bool
        Raise :class:`~ketabayes.errors.ConvergenceError` instead of warning.
    warn : bool
        Emit a :class:`~ketabayes.errors.ConvergenceWarning` when a check fails.

    Returns
    -------
    Diagnostics
    """
    # arviz_stats, not the arviz umbrella (which imports arviz_plots and matplotlib)
    import arviz_stats as azs

    rhat = azs.rhat(tree, var_names=var_names)
    ess_bulk = azs.ess(tree, var_names=var_names, method="bulk")
    ess_tail = azs.ess(tree, var_names=var_names, method="tail")
    to_ds = lambda t: t.to_dataset() if hasattr(t, "to_dataset") else t  # noqa: E731
    stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
    div = 0
    if stats is not None:
        name = "diverging" if "diverging" in stats else ("divergences" if "divergences" in stats else None)
        if name is not None:
            div = int(np.asarray(stats[name].values, dtype=bool).sum())
    post = tree["posterior"].to_dataset()
    n_draws = int(post.sizes.get("chain", 1) * post.sizes.get("draw", 0))
    d = Diagnostics(divergences=div, max_rhat=_max(to_ds(rhat)), min_ess_bulk=_min(to_ds(ess_bulk)),
                    min_ess_tail=_min(to_ds(ess_tail)), rhat_max=rhat_max, ess_min=ess_min, n_draws=n_draws)
    if div > 0:
        d.problems.append(f"{div} divergent transition(s)")
    if not d.max_rhat <= rhat_max:
        d.problems.append(f"max R-hat {d.max_rhat:.4f} > {rhat_max}")
    if not d.min_ess_bulk >= ess_min:
        d.problems.append(f"min bulk ESS {d.min_ess_bulk:.0f} < {ess_min:.0f}")
    if not d.min_ess_tail >= ess_min:
        d.problems.append(f"min tail ESS {d.min_ess_tail:.0f} < {ess_min:.0f}")
    if d.problems:
        msg = "NUTS diagnostics failed: " + "; ".join(d.problems) + \
              ". Increase draws/tune or target_accept (nuts={'target_accept': 0.95}), or use method='exact'."
        if strict:
            raise ConvergenceError(msg)
        if warn:
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    return d
