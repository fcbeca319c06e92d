"""Exceptions and warnings raised by ketabayes.

Every error a user can trigger with bad input is a :class:`KetabayesError`
(a subclass of :class:`ValueError`) whose message names the study and the
column involved, so it can be fixed without reading a traceback.
"""

from __future__ import annotations

__all__ = [
    "KetabayesError",
    "DataError",
    "RevManError",
    "ResultFileError",
    "PriorError",
    "ConvergenceError",
    "ExactIntegrationError",
    "ConvergenceWarning",
    "DataWarning",
]


class KetabayesError(ValueError):
    """Base class of all ketabayes errors (a :class:`ValueError`)."""


class DataError(KetabayesError):
    """Invalid input data: names the study and the column that are wrong.

    Attributes
    ----------
    study : str or None
        Label of the offending study, when one study is to blame.
    column : str or None
        Name of the offending column (as the user spelled it).
    """

    def __init__(self, message: str, *, study: str | None = None, column: str | None = None):
        self.study = study
        self.column = column
        where = []
        if study is not None:
            where.append(f"study {study!r}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class RevManError(KetabayesError):
    """A RevMan file that cannot be read; the message says what and where."""


class PriorError(KetabayesError):
    """An invalid prior specification."""


class ResultFileError(KetabayesError):
    """A saved result file that cannot be trusted: missing, damaged, foreign, or edited after saving."""


class ConvergenceError(KetabayesError):
    """Raised in strict mode when MCMC diagnostics fail their thresholds."""


class ExactIntegrationError(KetabayesError):
    """The exact engine could not integrate the posterior to its stated accuracy (e.g. an improper
    posterior); the message suggests fitting with NUTS instead."""


class ConvergenceWarning(UserWarning):
    """MCMC diagnostics (divergences, R-hat, ESS) failed their thresholds."""


class DataWarning(UserWarning):
    """Something about the data that the user must know (e.g. a study left out)."""
