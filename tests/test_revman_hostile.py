"""Hostile RevMan files stay inert (issue #15 item 7).

``read_revman`` parses .rm5 files with the standard library's expat-based ElementTree, after a pass over
the prolog (with :mod:`xml.parsers.expat`) that refuses entity declarations and external DTDs: RevMan
files declare neither. Every case here must end in a clear :class:`RevManError` or a correct, inert parse,
quickly, and without touching the network or the file system outside the file itself.
"""

from __future__ import annotations

import socket
import threading
import time
import warnings
from pathlib import Path

import pytest

from ketabayes.data.revman import read_revman
from ketabayes.errors import DataWarning, RevManError

RM5 = Path(__file__).parent / "data" / "review_utf8.rm5"
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
REFUSED = r"hostile\.rm5: the file (declares an XML entity|refers to an external DTD).*refused"


def _write(tmp_path, text, name="hostile.rm5"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def listener():
    """A TCP socket on 127.0.0.1 that records whether anything connected to it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    hits = []

    def accept():
        try:
            conn, _ = srv.accept()
            hits.append(conn)
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1], hits
    t.join(1)
    srv.close()


def test_xxe_local_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    path = _write(tmp_path, HEAD + f'<!DOCTYPE COCHRANE_REVIEW [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
                  "<COCHRANE_REVIEW><COVER_SHEET><TITLE>&x;</TITLE></COVER_SHEET></COCHRANE_REVIEW>")
    with pytest.raises(RevManError, match=REFUSED) as exc:
        read_revman(path)
    assert "TOP-SECRET" not in str(exc.value)


def test_xxe_http_localhost(tmp_path, listener):
    port, hits = listener
    path = _write(tmp_path, HEAD + f'<!DOCTYPE COCHRANE_REVIEW [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>'
                  "<COCHRANE_REVIEW><COVER_SHEET><TITLE>&x;</TITLE></COVER_SHEET></COCHRANE_REVIEW>")
    with pytest.raises(RevManError, match=REFUSED):
        read_revman(path)
    time.sleep(0.6)
    assert hits == []  # nothing was fetched


def test_external_dtd(tmp_path, listener):
    port, hits = listener
    path = _write(tmp_path, HEAD + f'<!DOCTYPE COCHRANE_REVIEW SYSTEM "http://127.0.0.1:{port}/evil.dtd">'
                  "<COCHRANE_REVIEW/>")
    with pytest.raises(RevManError, match=REFUSED):
        read_revman(path)
    time.sleep(0.6)
    assert hits == []


def test_external_parameter_entity(tmp_path):
    path = _write(tmp_path, HEAD + '<!DOCTYPE COCHRANE_REVIEW [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
                  "<COCHRANE_REVIEW/>")
    with pytest.raises(RevManError, match=REFUSED):
        read_revman(path)


def test_billion_laughs(tmp_path):
    ents = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    path = _write(tmp_path, HEAD + f"<!DOCTYPE COCHRANE_REVIEW [{ents}]>"
                  "<COCHRANE_REVIEW><COVER_SHEET><TITLE>&a9;</TITLE></COVER_SHEET></COCHRANE_REVIEW>")
    t0 = time.perf_counter()
    with pytest.raises(RevManError, match=REFUSED):
        read_revman(path)
    assert time.perf_counter() - t0 < 2


def test_quadratic_blowup(tmp_path):
    path = _write(tmp_path, HEAD + f'<!DOCTYPE COCHRANE_REVIEW [<!ENTITY a "{"x" * 50_000}">]>'
                  f"<COCHRANE_REVIEW><COVER_SHEET><TITLE>{'&a;' * 50_000}</TITLE></COVER_SHEET></COCHRANE_REVIEW>")
    t0 = time.perf_counter()
    with pytest.raises(RevManError, match=REFUSED):
        read_revman(path)
    assert time.perf_counter() - t0 < 2


def test_plain_doctype_without_entities_is_read(tmp_path):
    text = RM5.read_text(encoding="utf-8")
    path = _write(tmp_path, text.replace("<COCHRANE_REVIEW ", "<!DOCTYPE COCHRANE_REVIEW>\n<COCHRANE_REVIEW ", 1))
    assert read_revman(path).equals(read_revman(RM5))


def test_deep_nesting(tmp_path):
    depth = 100_000
    path = _write(tmp_path, HEAD + "<COCHRANE_REVIEW>" + "<X>" * depth + "</X>" * depth + "</COCHRANE_REVIEW>")
    t0 = time.perf_counter()
    with pytest.warns(DataWarning, match="no study-level analysis data found"):
        df = read_revman(path)
    assert len(df) == 0
    assert time.perf_counter() - t0 < 5


def test_deep_nesting_unclosed_is_a_clear_error(tmp_path):
    path = _write(tmp_path, HEAD + "<COCHRANE_REVIEW>" + "<X>" * 100_000)
    with pytest.raises(RevManError, match=r"not well-formed XML.*truncated"):
        read_revman(path)


def _padded_review(path: Path, size: int) -> None:
    """The fixture with ~``size`` bytes of inert padding (a comment and a long cover-sheet text)."""
    text = RM5.read_text(encoding="utf-8")
    half = size // 2
    text = text.replace("<COVER_SHEET>", f"<!-- {'p' * half} --><COVER_SHEET><SUMMARY>{'q' * half}</SUMMARY>", 1)
    path.write_text(text, encoding="utf-8")


def test_50_mb_file_is_read_correctly(tmp_path):
    path = tmp_path / "big.rm5"
    _padded_review(path, 50_000_000)
    assert path.stat().st_size > 50_000_000
    t0 = time.perf_counter()
    df = read_revman(path)
    assert time.perf_counter() - t0 < 10
    assert df.equals(read_revman(RM5))


@pytest.mark.slow
def test_50_mb_of_data_rows(tmp_path):
    text = RM5.read_text(encoding="utf-8")
    row = '<DICH_DATA STUDY_ID="STD-Okafor-2014" EVENTS_1="3" TOTAL_1="40" EVENTS_2="5" TOTAL_2="41" ORDER="1"/>\n'
    n = 50_000_000 // len(row) + 1
    i = text.index("<DICH_DATA")
    path = tmp_path / "rows.rm5"
    path.write_text(text[:i] + row * n + text[i:], encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = read_revman(path)
    # the only warning: the trial now fills one analysis n + 1 times (its patients counted n + 1 times); the
    # warning names the trial and counts the rows instead of listing half a million of them
    assert [w.category for w in caught] == [DataWarning]
    text = str(caught[0].message)
    assert f"appears {n + 1} times" in text and "'Okafor 2014'" in text and len(text) < 2000
    small = read_revman(RM5)
    assert len(df) == len(small) + n

    def copies(t):
        return int(((t["study"] == "Okafor 2014") & (t["ai"] == 3) & (t["n1i"] == 40) & (t["ci"] == 5)
                    & (t["n2i"] == 41)).sum())

    assert copies(df) == copies(small) + n
