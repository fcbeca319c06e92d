"""Checkpoints: an append-only record of finished variants (JSON lines or CSV).

Every finished variant is appended (and flushed) as soon as the parent process
receives it, so an interrupted grid loses only the variants that were running.
A record torn by a crash in the middle of a write (the last line of the file
without its newline, a line that is not valid JSON, or a CSV record with fewer
rows than it announced) is skipped with a :class:`~ketabayes.errors.DataWarning`
and the file is rewritten without it, so the resumed grid neither recomputes
the finished variants nor duplicates rows.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ketabayes.errors import DataWarning, KetabayesError

__all__ = ["Checkpoint"]


class Checkpoint:
    """Append-only record of finished variants, tied to a grid's configuration hash.

    Parameters
    ----------
    path : str or Path
        ``.jsonl`` / ``.json`` (one JSON object per variant and line) or ``.csv``
        (one line per table row, with ``_config``, ``_ok`` and ``_n``: the number of
        rows the variant's record has).
    config : str
        :meth:`Sensitivity.config_hash`; a file written for another configuration is refused.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "grid.jsonl"
    >>> ck = Checkpoint(p, "abc")
    >>> ck.append("v1", [{"target": "mean", "mean": 0.5}], True)
    >>> with p.open("a") as f:  # a crash in the middle of writing the next record
    ...     _ = f.write('{"config": "abc", "fit_id": "v2", "ok": tr')
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     done = ck.load()
    >>> sorted(done), "torn" in str(w[0].message)
    (['v1'], True)
    """

    def __init__(self, path, config: str):
        self.path = Path(path)
        self.config = config
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".json", ".csv"):
            raise KetabayesError(f"checkpoint must be a .jsonl or .csv file, got {self.path.name!r} "
                                 "(parquet would need pyarrow)")
        self.csv = suffix == ".csv"

    # ------------------------------------------------------------------ reading
    def load(self) -> dict[str, tuple[list[dict], bool]]:
        """``{fit_id: (rows, ok)}`` of the finished variants (the last record of a variant wins)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return {}
        text = self.path.read_text(encoding="utf-8")
        out, bad = (self._load_csv if self.csv else self._load_jsonl)(text)
        if bad:
            warnings.warn(f"checkpoint {str(self.path)!r}: skipped {len(bad)} torn or incomplete record(s) "
                          f"({'; '.join(bad[:3])}), e.g. from a crash in the middle of a write; those variants "
                          "are fitted again and the file is rewritten without them", DataWarning, stacklevel=3)
            self._rewrite(out)
        return out

    def _load_jsonl(self, text: str):
        lines = text.split("\n")
        torn_tail = not text.endswith("\n")
        out: dict[str, tuple[list[dict], bool]] = {}
        bad, configs = [], set()
        for i, s in enumerate(lines):
            if not s.strip():
                continue
            last = i == len(lines) - 1
            try:
                rec = json.loads(s)
                if last and torn_tail:
                    raise ValueError("no newline at the end")
                fit_id, rows, ok, cfg = rec["fit_id"], rec["rows"], bool(rec["ok"]), rec["config"]
            except (ValueError, KeyError, TypeError) as e:
                bad.append(f"line {i + 1}: torn record ({type(e).__name__})")
                continue
            configs.add(cfg)
            out[fit_id] = (rows, ok)
        self._check(configs)
        return out, bad

    def _load_csv(self, text: str):
        bad = []
        if not text.endswith("\n"):
            cut = text.rfind("\n") + 1
            bad.append(f"line {text.count(chr(10)) + 1}: torn record (no newline at the end)")
            text = text[:cut]
        if not text.strip():
            return {}, bad
        try:
            df = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""],
                             dtype={"error": str, "verdict": str, "verdict_avg": str, "warning": str})
        except (pd.errors.ParserError, ValueError) as e:
            raise KetabayesError(f"checkpoint {str(self.path)!r} cannot be read as CSV ({e}); delete it or "
                                 "choose another checkpoint path") from e
        needed = {"_config", "_ok", "_n", "fit_id"}
        if not needed <= set(df.columns):
            raise KetabayesError(f"checkpoint {str(self.path)!r} lacks the columns {sorted(needed - set(df.columns))}"
                                 ": it was not written by this version of the sensitivity grid")
        self._check(set(df["_config"].dropna().astype(str)))
        recs = df.to_dict(orient="records")
        out: dict[str, tuple[list[dict], bool]] = {}
        i = 0
        while i < len(recs):  # records are contiguous blocks of _n rows of one fit_id
            fid, n = recs[i]["fit_id"], recs[i]["_n"]
            n = int(n) if isinstance(n, (int, float, np.integer)) and math.isfinite(n) else 0
            j = i
            while j < len(recs) and recs[j]["fit_id"] == fid and j - i < max(n, 1):
                j += 1
            block = recs[i:j]
            if n < 1 or len(block) != n:
                bad.append(f"variant {fid!r}: {len(block)} of {n} rows (incomplete record)")
            else:
                ok = all(str(r["_ok"]).lower() in ("true", "1") for r in block)
                rows = []
                for r in block:
                    r = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()
                         if k not in ("_config", "_ok", "_n")}
                    r["error"] = r.get("error") or ""
                    rows.append(r)
                out[str(fid)] = (rows, ok)
            i = j
        return out, bad

    def _check(self, configs):
        bad = set(configs) - {self.config}
        if bad:
            raise KetabayesError(f"checkpoint {str(self.path)!r} was written for a different configuration (data "
                                 "set, prior definitions, subsets, factor levels, MCIDs, targets or other grid "
                                 f"settings differ: config {sorted(bad)[0]} vs {self.config}), so its rows "
                                 "cannot be reused; delete it or choose another checkpoint path")

    # ------------------------------------------------------------------ writing
    def _rewrite(self, records: dict[str, tuple[list[dict], bool]]) -> None:
        """Replace the file by ``records`` (atomically: a temporary file, then :func:`os.replace`)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        if self.csv:
            frames = [self._csv_frame(rows, ok) for rows, ok in records.values()]
            (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_csv(tmp, index=False)
        else:
            with tmp.open("w", encoding="utf-8") as f:
                for fid, (rows, ok) in records.items():
                    f.write(self._json_line(fid, rows, ok))
        os.replace(tmp, self.path)

    def _json_line(self, fit_id: str, rows: list[dict], ok: bool) -> str:
        clean = [{k: _jsonable(v) for k, v in r.items()} for r in rows]
        return json.dumps({"config": self.config, "fit_id": fit_id, "ok": bool(ok), "rows": clean}) + "\n"

    def _csv_frame(self, rows: list[dict], ok: bool) -> pd.DataFrame:
        df = pd.DataFrame([{k: _jsonable(v) for k, v in r.items()} for r in rows])
        df["_config"] = self.config
        df["_ok"] = bool(ok)
        df["_n"] = len(rows)
        return df

    def append(self, fit_id: str, rows: list[dict], ok: bool) -> None:
        """Append one finished variant and flush it to disk."""
        if not self.csv:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(self._json_line(fit_id, rows, ok))
                f.flush()
            return
        df = self._csv_frame(rows, ok)
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists:
            cols = pd.read_csv(self.path, nrows=0).columns.tolist()
            for c in cols:
                if c not in df.columns:
                    df[c] = None
            if [c for c in df.columns if c not in cols]:  # a wider row than the header: rewrite with the union
                old = pd.read_csv(self.path, keep_default_na=False, na_values=[""])
                tmp = self.path.with_name(self.path.name + ".tmp")
                pd.concat([old, df], ignore_index=True).to_csv(tmp, index=False)
                os.replace(tmp, self.path)
                return
            df = df[cols]
        with self.path.open("a", encoding="utf-8", newline="") as f:
            df.to_csv(f, header=not exists, index=False)
            f.flush()


def _jsonable(v):
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v
