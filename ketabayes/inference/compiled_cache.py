"""One compiled NUTS model per model structure: grids of variants that change only data or prior parameters.

A PyMC model built with its data and its prior parameters in ``pm.Data``
containers (:func:`prior_rv` below; the builders of
:mod:`ketabayes.inference.nuts` and :mod:`ketabayes.inference.nuts_hierarchical`)
is compiled once by nutpie (:func:`nutpie.compile_pymc_model`); every further
variant with the same structure -- same prior families, same number of trials and
groups -- swaps its values into the compiled model
(``CompiledPyMCModel.with_data``) and samples it without compiling again.
:class:`CompiledModelCache` keeps the compiled models by a structure key; the models'
``fit("nuts", cache=...)`` use it through :func:`sample_model`. Structure keys:
:func:`~ketabayes.inference.nuts.normal_normal_key`,
:func:`~ketabayes.inference.nuts_hierarchical.hierarchical_key`,
:func:`~ketabayes.inference.nuts_hierarchical.binomial_key`. Numba compiles without
fast-math (:func:`ketabayes._compat.ieee_pytensor`), as for every other fit.

A leave-one-out variant keeps the number of trials: the left-out trial gets zero
counts and zero group sizes, so its binomial likelihood is exactly 1 and it
contributes nothing (its own baseline and effect are then drawn from their priors
and are not reported).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time

import numpy as np

from ketabayes.model.priors import Prior

__all__ = ["CompiledModelCache", "nutpie_seed", "prior_data", "prior_rv", "sample_model"]


def _param_name(name: str, param: str) -> str:
    return f"{name}__{param}"


def prior_rv(prior: Prior, name: str, **kwargs):
    """``prior.to_pymc(name)`` with every numeric parameter in a ``pm.Data`` container ``<name>__<param>``.

    Must be called inside a model context. The values can then be changed with
    :func:`prior_data` (``pm.set_data`` or ``CompiledPyMCModel.with_data``) without
    rebuilding the model.
    """
    import pymc as pm

    twin = object.__new__(type(prior))
    for f in dataclasses.fields(prior):
        object.__setattr__(twin, f.name, getattr(prior, f.name))
    for p in prior._params:
        object.__setattr__(twin, p, pm.Data(_param_name(name, p), float(getattr(prior, p))))
    return type(prior).to_pymc(twin, name, **kwargs)


def prior_data(prior: Prior, name: str) -> dict[str, float]:
    """The ``pm.Data`` values of :func:`prior_rv` for ``prior``."""
    return {_param_name(name, p): float(getattr(prior, p)) for p in prior._params}


def nutpie_seed(seed: int, chains: int) -> int:
    """The seed ``pymc.sample(random_seed=seed, chains=chains)`` hands to nutpie (PyMC 6:
    ``default_rng(seed).spawn(chains)``, one integer below ``2**30`` from the first generator)."""
    return int(np.random.default_rng(int(seed)).spawn(int(chains))[0].integers(2**30))


def prior_signature(prior: Prior) -> str:
    """The part of a prior that fixes the model's structure: its family (not its parameters)."""
    return prior.kind


class CompiledModelCache:
    """Compiled nutpie models by structure key; variants re-use them with new data.

    Parameters
    ----------
    maxsize : int
        Compiled models kept (least recently used dropped first).

    Attributes
    ----------
    compilations : int
        Number of models compiled so far (a variant found in the cache adds none).

    Examples
    --------
    >>> from ketabayes.inference.compiled_cache import CompiledModelCache
    >>> cache = CompiledModelCache(maxsize=4)
    >>> cache.compilations, len(cache)
    (0, 0)
    """

    def __init__(self, maxsize: int = 8):
        self.maxsize = int(maxsize)
        self.compilations = 0
        self._models: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._models)

    def compiled(self, key, build):
        """The compiled model and PyMC model for ``key``; ``build()`` (returning a ``pymc.Model``) only if new."""
        import nutpie

        from ketabayes._compat import ieee_pytensor

        ieee_pytensor()
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            pm_model = build()
            entry = (nutpie.compile_pymc_model(pm_model, backend="numba"), pm_model)
            self.compilations += 1
            self._models[key] = entry
            while len(self._models) > self.maxsize:
                self._models.popitem(last=False)
            return entry

    def sample(self, key, build, data: dict, *, seed: int, draws: int = 1000, tune: int = 1000, chains: int = 4,
               cores: int | None = None, nuts: dict | None = None):
        """Sample the variant ``data`` (``pm.Data`` name -> value) of the model ``key`` with nutpie.

        Returns the posterior as an :class:`xarray.DataTree` laid out as ``pymc.sample``'s
        (PyMC's own post-processing of nutpie output is applied), with the data of the variant.
        nutpie is called as ``pymc.sample`` calls it (:func:`nutpie_seed`, no warm-up draws
        kept), so a variant's draws equal those of an uncached ``pymc.sample`` of the same
        model with the same seed, bit for bit (``tests/test_compiled_cache.py``).
        """
        import nutpie
        import pymc as pm
        from pymc.backends.arviz import patch_nutpie_idata

        compiled, pm_model = self.compiled(key, build)
        values = {k: np.asarray(v) for k, v in data.items()}
        variant = compiled.with_data(**values)
        with pm_model:  # the initial-point function reads the model's own shared variables
            pm.set_data(values)
        opts = dict(nuts or {})
        if "max_treedepth" in opts:
            opts["maxdepth"] = opts.pop("max_treedepth")
        t0 = time.time()
        tree = nutpie.sample(variant, draws=draws, tune=max(int(tune), 1), chains=chains,
                             cores=cores if cores is not None else min(chains, 2), seed=nutpie_seed(seed, chains),
                             save_warmup=False, progress_bar=False, **opts)
        patch_nutpie_idata(tree, pm_model, sampling_time=time.time() - t0)
        return tree


def sample_model(build, *, cache: CompiledModelCache | None = None, key=None, data=None, seed: int, draws: int,
                 tune: int, chains: int, nuts: dict, progressbar: bool | None = None, **sample_kwargs):
    """Sample a model's NUTS posterior: ``pymc.sample`` of ``build()``, or through ``cache``.

    With a :class:`CompiledModelCache`, ``key()`` (the structure key) selects the compiled model
    (``build()`` compiles it only the first time) and ``data()`` gives the variant's ``pm.Data``
    values; nutpie then runs as ``pymc.sample`` would run it, so the draws are the same. Only
    ``cores`` of ``sample_kwargs`` is accepted with a cache (other ``pymc.sample`` arguments have
    no nutpie equivalent): anything else raises a :class:`~ketabayes.errors.KetabayesError`.
    """
    if cache is None:
        from ketabayes.inference.nuts import sample_nuts

        return sample_nuts(build(), seed=seed, draws=draws, tune=tune, chains=chains, nuts=nuts,
                           progressbar=progressbar, **sample_kwargs)
    from ketabayes.errors import KetabayesError

    extra = sorted(set(sample_kwargs) - {"cores"})
    if extra:
        raise KetabayesError(f"with cache=..., NUTS runs through nutpie directly; unsupported pymc.sample "
                             f"arguments: {', '.join(extra)}")
    return cache.sample(key(), build, data(), seed=seed, draws=draws, tune=tune, chains=chains,
                        cores=sample_kwargs.get("cores"), nuts=nuts)
