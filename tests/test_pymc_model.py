"""The PyMC model behind each NUTS engine is reachable from the model object (issue #13 item 4).

Prior predictive draws of the mean and of tau are compared with the priors' closed-form moments, with
tolerances of 5 Monte-Carlo standard errors (independent draws)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from ketabayes.data.simulate import simulate_review
from ketabayes.errors import KetabayesError
from ketabayes.model.binomial import BinomialModel
from ketabayes.model.hierarchical import HierarchicalModel
from ketabayes.model.random_effects import RandomEffectsModel

N = 4000
MU_SD, TAU_SCALE = 3.0, 2.0


def _normal_data():
    return pd.DataFrame({"study": [f"T{i}" for i in range(6)], "drug": list("kkkmmd"),
                         "yi": [-2.0, -1.0, 0.5, 1.0, -0.5, 0.2], "vi": [0.5, 0.4, 0.6, 0.3, 0.5, 0.7]})


def _models():
    priors = dict(prior_mu=f"normal(0, {MU_SD})", prior_tau=f"halfnormal({TAU_SCALE})")
    df = _normal_data()
    binary = simulate_review(seed=2, binary={"mu": -0.7, "tau": 0.1}, drugs={"k": 4, "m": 3},
                             conditions={"x": 1.0}, n_range=(30, 60))  # SIMULATED
    return {
        "random effects": lambda: RandomEffectsModel(df, **priors).pymc_model(),
        "hierarchical, marginal": lambda: HierarchicalModel(df, by="drug", **priors).pymc_model(),
        "hierarchical, non-centred": lambda: HierarchicalModel(df, by="drug", **priors).pymc_model("noncentred"),
        "binomial": lambda: BinomialModel(binary, by="drug", **priors).pymc_model(),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_prior_predictive_of_mu_and_tau_match_the_priors(name):
    model = _models()[name]()
    assert isinstance(model, pm.Model)
    with warnings.catch_warnings():
        if name == "hierarchical, marginal":  # its likelihood is a Potential: PyMC says it draws no data
            warnings.filterwarnings("ignore", "The effect of Potentials", UserWarning)
        prior = pm.sample_prior_predictive(draws=N, model=model, random_seed=1)["prior"]
    tau = np.asarray(prior["tau"]).ravel()
    assert tau.size == N
    if name == "hierarchical, marginal":  # only the variance components are sampled (mu integrated out)
        assert "mu" not in prior and "sd_drug" in prior
    else:  # normal(0, 3): mean 0, sd 3
        mu = np.asarray(prior["mu"]).ravel()
        assert abs(mu.mean()) < 5 * MU_SD / math.sqrt(N)
        assert abs(mu.std() - MU_SD) < 5 * MU_SD / math.sqrt(2 * N)
    # halfnormal(2): mean 2 sqrt(2 / pi), sd 2 sqrt(1 - 2 / pi)
    tau_mean, tau_sd = TAU_SCALE * math.sqrt(2 / math.pi), TAU_SCALE * math.sqrt(1 - 2 / math.pi)
    assert abs(tau.mean() - tau_mean) < 5 * tau_sd / math.sqrt(N)
    assert tau.min() >= 0


def test_unknown_parameterisation_is_a_ketabayes_error():
    with pytest.raises(KetabayesError, match="parameterization"):
        HierarchicalModel(_normal_data(), by="drug", prior_tau="halfnormal(1)").pymc_model("centred")
