"""The MCID prior panel for ``mu``: sceptical, neutral and enthusiastic priors (Spiegelhalter et al. 1994).

Re-exported by :mod:`ketabayes.model.priors`.

References
----------
Spiegelhalter DJ, Freedman LS, Parmar MKB (1994). Bayesian approaches to
randomized trials. J R Stat Soc A 157(3):357-416. doi:10.2307/2983527
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ketabayes.errors import PriorError
from ketabayes.model.priors import Normal

__all__ = ["PriorPanel", "prior_panel"]

_Z95 = float(stats.norm.ppf(0.95))


@dataclass(frozen=True)
class PriorPanel:
    """Sceptical, neutral and enthusiastic priors for ``mu`` tied to an MCID.

    Attributes
    ----------
    priors : dict[str, Normal]
        ``{"sceptical": ..., "neutral": ..., "enthusiastic": ...}``
    definitions : dict[str, str]
        Plain-words definition of each prior, printed with every table.
    """

    priors: dict
    definitions: dict
    mcid: float
    benefit: str

    def __iter__(self):
        return iter(self.priors.items())

    def __getitem__(self, name):
        return self.priors[name]

    def describe(self) -> str:
        return "\n".join(f"  {name:<12} {self.priors[name]}  -- {self.definitions[name]}" for name in self.priors)


def prior_panel(mcid: float, benefit: str = "lower", *, neutral_sd_factor: float = 5.0) -> PriorPanel:
    """The community of priors of Spiegelhalter et al. (1994), defined by the MCID.

    With ``delta = mcid`` on the analysis scale (log scale for ratio measures) and
    ``s = 1.645`` (the 95% normal quantile):

    * **sceptical**: ``N(0, (delta/s)**2)`` -- centred on no effect, with 5% prior
      probability of a benefit beyond the MCID;
    * **neutral** (weakly informative): ``N(0, (neutral_sd_factor*delta)**2)`` -- centred
      on no effect and wide: with the default factor 5, ``P(|mu| > MCID) = 84%``;
    * **enthusiastic**: centred on a benefit equal to the MCID, with 5% prior
      probability of no benefit or harm (``N(-delta, (delta/s)**2)`` when lower is better).

    Parameters
    ----------
    mcid : float
        Minimal clinically important difference on the analysis scale (> 0).
    benefit : {"lower", "higher"}
        Direction of benefit.
    neutral_sd_factor : float
        Width of the neutral prior in units of the MCID.

    Returns
    -------
    PriorPanel

    References
    ----------
    Spiegelhalter DJ, Freedman LS, Parmar MKB (1994). J R Stat Soc A 157(3):357-416.
    doi:10.2307/2983527

    Examples
    --------
    >>> from ketabayes.model.priors import prior_panel
    >>> panel = prior_panel(10, "lower")
    >>> round(panel["sceptical"].sigma, 4)
    6.0796
    """
    if not (isinstance(mcid, (int, float, np.floating, np.integer)) and math.isfinite(mcid) and mcid > 0):
        raise PriorError(f"the MCID must be a positive number on the analysis scale, got {mcid!r}")
    if benefit not in ("lower", "higher"):
        raise PriorError(f"benefit must be 'lower' or 'higher', got {benefit!r}")
    sign = -1.0 if benefit == "lower" else 1.0
    sd = mcid / _Z95
    priors = {
        "sceptical": Normal(0.0, sd, label="sceptical"),
        "neutral": Normal(0.0, neutral_sd_factor * mcid, label="neutral"),
        "enthusiastic": Normal(sign * mcid, sd, label="enthusiastic"),
    }
    direction = "below" if benefit == "lower" else "above"
    defs = {
        "sceptical": f"centred on 0; P(benefit beyond the MCID, mu {direction} {sign * mcid:+.4g}) = 5%",
        "neutral": f"centred on 0, sd = {neutral_sd_factor:g} x MCID (weakly informative)",
        "enthusiastic": f"centred on a benefit equal to the MCID ({sign * mcid:+.4g}); P(no benefit) = 5%",
    }
    return PriorPanel(priors=priors, definitions=defs, mcid=float(mcid), benefit=benefit)
