"""Guards for RevMan XML before ElementTree builds the tree: no entities or external DTDs, honest encoding.

Used by :mod:`ketabayes.data.revman`. RevMan 5 files declare no entities and no external DTD, so a file
that does is refused (XXE, billion laughs, quadratic blow-up stay inert whatever the expat version); a
file that declares ISO-8859-1 but holds multi-byte UTF-8 (re-saved by another tool) is read as UTF-8.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat

from ketabayes.errors import RevManError

__all__ = ["refuse_entities", "utf8_declared_single_byte", "parse_review"]

# declared encodings that RevMan 5 writes besides UTF-8; a file declaring one of them but holding valid
# multi-byte UTF-8 was re-saved as UTF-8 by another tool
_SINGLE_BYTE = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "windows-1252", "cp1252"}
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def refuse_entities(raw: bytes, name: str) -> None:
    """Refuse entity declarations and external DTDs before building the tree.

    RevMan files declare neither; refusing them keeps hostile files (XXE, billion laughs, quadratic
    blow-up) inert whatever the expat version. Only the prolog is read: parsing stops at the root element.
    """
    class _Done(Exception):
        pass

    def refuse(what):
        raise RevManError(f"{name}: the file {what}, which RevMan files never do; refused (a malformed or "
                          "hostile XML file)")

    def doctype(doctype_name, system_id, public_id, has_internal_subset):
        if system_id or public_id:
            refuse(f"refers to an external DTD ({system_id or public_id!r})")

    def entity(entity_name, *args):
        refuse(f"declares an XML entity ({entity_name!r})")

    def external(*args):
        refuse("refers to an external entity")
        return 0

    def start(*args):
        raise _Done

    p = expat.ParserCreate()
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.StartDoctypeDeclHandler = doctype
    p.EntityDeclHandler = entity
    p.UnparsedEntityDeclHandler = entity
    p.ExternalEntityRefHandler = external
    p.StartElementHandler = start
    try:
        p.Parse(raw, True)
    except _Done:
        pass
    except expat.ExpatError:
        pass  # reported with its position by the real parse below


def utf8_declared_single_byte(raw: bytes, name: str, encoding: str | None, notes: list[str]) -> str | None:
    """``"utf-8"`` when the file declares ISO-8859-1 (or cp1252) but its bytes are multi-byte UTF-8."""
    if encoding:
        return encoding
    declared = _DECLARED.match(raw[:200])
    if not declared or declared.group(1).decode("ascii").lower() not in _SINGLE_BYTE:
        return None
    if raw.isascii():
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return None  # genuinely single-byte text
    notes.append(f"{name}: the XML declaration says {declared.group(1).decode('ascii')} but the file is "
                 "UTF-8 (its non-ASCII bytes form valid UTF-8 sequences); it was read as UTF-8. Pass "
                 "encoding=... to override")
    return "utf-8"


def parse_review(raw: bytes, name: str, encoding: str | None, notes: list[str]) -> ET.Element:
    """The ``<COCHRANE_REVIEW>`` root of a RevMan 5 file, after the guards above; clear errors otherwise."""
    refuse_entities(raw, name)
    encoding = utf8_declared_single_byte(raw, name, encoding, notes)
    try:
        parser = ET.XMLParser(encoding=encoding) if encoding else None
        root = ET.fromstring(raw, parser=parser)
    except LookupError as exc:
        raise RevManError(f"{name}: {exc}") from None
    except ET.ParseError as exc:
        line, column = exc.position
        hint = " The file may be truncated: export or save it again from RevMan."
        if "invalid token" in str(exc) and encoding is None:
            hint = " If the file is not UTF-8 and its XML declaration does not say so, pass encoding='ISO-8859-1'."
        raise RevManError(f"{name}: not well-formed XML at line {line}, column {column} ({exc}).{hint}") from None
    if root.tag != "COCHRANE_REVIEW":
        raise RevManError(f"{name}: unknown root element <{root.tag}>; a RevMan 5 review file has <COCHRANE_REVIEW>")
    return root
