"""Sensitivity analyses: one analysis re-run over a grid of variants, as a tidy table.

The package sits above :mod:`ketabayes.model` and :mod:`ketabayes.result` (it imports
them; nothing below imports it). One module per job:

==================  ============================================================
``spec``            factors, levels, :class:`Variant`, :func:`variant_seed`
``grid``            :class:`Sensitivity` (configure, inspect, run), :func:`sensitivity_grid`
``analyses``        the analyses registry (:func:`register_analysis`) and built-in factories
``worker``          fitting one variant (runs in the worker processes)
``power_scaling``   power-scaling prior / likelihood sensitivity of NUTS variants
``data_factors``    the data factors: every variant's effect-size frame (``data``, ``r``, ``multiarm``,
                    ``conversions``), built once by the data layer's functions
``structured``      correlated estimates (multi-arm, time windows), risk-of-bias adjustment, ``model="bma"``
``runner``          serial / concurrent.futures / Dask execution; dying workers, timeouts, Ctrl-C
``checkpoint``      append-only JSONL / CSV checkpoints, torn records skipped
``tables``          the typed tidy table, :class:`SensitivityResult`, robustness summaries
==================  ============================================================


A *variant* is one combination of factor levels:

===============  ================================================================
factor           levels
===============  ================================================================
``prior_mu``     priors of the average effect (``"panel"`` = sceptical / neutral /
                 enthusiastic, :func:`~ketabayes.model.priors.prior_panel`)
``prior_tau``    priors of the between-study SD (e.g. half-normal, Turner, Rhodes)
``model``        ``"random"`` / ``"fixed"`` built in, ``"bma"`` (:func:`ketabayes.bma`);
                 ``"hierarchical"`` and others through :func:`register_analysis`
                 (an *analysis factory*)
``likelihood``   ``"normal"`` built in; ``"binomial"`` through :func:`register_analysis`
``bias``         ``"none"`` / ``"RoB"``: trials at high risk of bias shifted by
                 a bias with kb.bma's priors (:class:`BiasAdjustment`; Welton et al.
                 2009, Turner et al. 2009)
``data``         the effect-size table itself: tables, or callables of the first
``r``            the within-patient correlation assumed where a trial reports none
                 (crossover periods, paired measures): those trials re-derived
``multiarm``     ``"correlated"`` / ``"combine"`` / ``"split"`` (Cochrane Handbook 23.3.4)
``conversions``  ``"included"`` / ``"excluded"``: trials whose summaries were converted
``rho_time``     correlation of a trial's estimates across time windows
                 (``rho_between``: of its true effects)
``subset``       ``"all"`` plus named subsets of studies (boolean masks, query strings
                 or callables) and, with ``leave_one_out=True``, every study left out
``method``       ``"exact"`` (integration over tau, milliseconds) or ``"nuts"``
``mcid``         decision thresholds -- never a refit: the probabilities of every
                 MCID are computed from the same posterior
===============  ================================================================

The grid is the full factorial design (``design="factorial"``) or the
one-factor-at-a-time design around the first level of every factor
(``design="one-at-a-time"``, the design of a tornado plot). Every row of the
result is one variant x MCID x target with the posterior summary, the decision
probabilities and a *verdict* (:class:`VerdictRule`).

Cheap where possible
--------------------
* exact-engine variants call :class:`~ketabayes.inference.exact.ExactNormalNormal`
  directly (no draws, no DataTree, no frequentist fit) unless ``keep_results=True``;
* MCID variants reuse one posterior;
* NUTS variants get power-scaling prior and likelihood sensitivity
  (Kallioinen et al. 2024) by Pareto-smoothed importance weights from ArviZ --
  rows with ``power_scaling = "prior^0.8"`` etc., without refitting, with the
  importance-sampling ESS (``is_ess``) and Pareto k-hat (``pareto_k``; above
  0.7 the row's ``warning`` says the estimate is unreliable) -- and the
  local sensitivity diagnostic of :func:`arviz.psense` in columns
  ``psense_prior``/``psense_likelihood``.

Scale-out
---------
``executor=`` takes any :class:`concurrent.futures.Executor`. For large grids
use a Dask cluster (pass the client itself)::

    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=8, threads_per_worker=1) as cluster, Client(cluster) as client:
        res = sensitivity_grid(data, ..., executor=client)

Each variant's seed is derived from the base seed and the variant's name
(:func:`variant_seed`), so results do not depend on execution order or executor.
A failing variant is recorded with its error in the ``error`` column; the
others are unaffected -- also when its worker process dies or it hangs
(``timeout=``), see :mod:`ketabayes.sensitivity.runner`. With ``checkpoint="grid.jsonl"`` (JSON lines, or
``.csv``) every finished variant is appended as it completes and a rerun skips
the variants already done; the checkpoint is tied to :meth:`Sensitivity.config_hash`
(data, prior definitions, subset rows, factor levels, design, targets, MCIDs,
...), so a changed configuration is refused rather than silently reused.

Reproducibility: the table has the priors themselves next to their labels
(``prior_mu_spec``, ``prior_tau_spec``) and carries package versions,
``data_hash``, the base seed, ``config_hash`` and the grid in ``table.attrs``;
:meth:`SensitivityResult.to_csv` writes those next to the CSV
(``<stem>.settings.json``).

References
----------
Kallioinen N, Paananen T, Bürkner PC, Vehtari A (2024). Detecting and diagnosing
prior and likelihood sensitivity with power-scaling. Stat Comput 34:57.
doi:10.1007/s11222-023-10366-5
Turner RM, Spiegelhalter DJ, Smith GCS, Thompson SG (2009). Bias modelling in evidence
synthesis. J R Stat Soc A 172(1):21-47. doi:10.1111/j.1467-985X.2008.00547.x
Elbourne DR, Altman DG, Higgins JPT, Curtin F, Worthington HV, Vail A (2002). Meta-analyses
involving cross-over trials: methodological issues. Int J Epidemiol 31(1):140-149.
doi:10.1093/ije/31.1.140
Spiegelhalter DJ, Freedman LS, Parmar MKB (1994). Bayesian approaches to
randomized trials. J R Stat Soc A 157(3):357-416. doi:10.2307/2983527
"""

from __future__ import annotations

from ketabayes.decision import VERDICTS, VerdictRule, verdict
from ketabayes.sensitivity.analyses import (
    AnalysisNotAvailableError,
    available_analyses,
    binomial_analysis,
    hierarchical_analysis,
    normal_analysis,
    register_analysis,
    separate_analysis,
)
from ketabayes.sensitivity.grid import Sensitivity, sensitivity_grid
from ketabayes.sensitivity.power_scaling import PARETO_K_THRESHOLD
from ketabayes.sensitivity.spec import DATA_FACTORS, FACTORS, FLOAT_FACTORS, Variant, variant_seed
from ketabayes.sensitivity.structured import BiasAdjustment
from ketabayes.sensitivity.tables import TABLE_COLUMNS, SensitivityResult

__all__ = [
    "Sensitivity",
    "SensitivityResult",
    "Variant",
    "VerdictRule",
    "BiasAdjustment",
    "AnalysisNotAvailableError",
    "sensitivity_grid",
    "register_analysis",
    "available_analyses",
    "normal_analysis",
    "binomial_analysis",
    "hierarchical_analysis",
    "separate_analysis",
    "variant_seed",
    "verdict",
    "FACTORS",
    "DATA_FACTORS",
    "FLOAT_FACTORS",
    "VERDICTS",
    "TABLE_COLUMNS",
    "PARETO_K_THRESHOLD",
]
