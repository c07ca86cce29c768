"""NCMEC's CyberTipline XML schema: validation, and its vocabulary read from the schema itself.

The schema is the authority on what the API accepts, so the builder, the console and the stand-in all ask the
*loaded* schema (``enumeration``, ``flags``) rather than a list of our own. The bundled copy
(``cyber_tipline.xsd``, see ``SCHEMA.md``) is the default; an operator points ``SAFEHOLD_CYBERTIP_SCHEMA`` at a newer
one fetched from the API's ``/xsd`` when NCMEC adds values.

Documents to validate may come from outside (the stand-in validates what clients send), so they are parsed with
no DTD, no entity expansion and no network access; a document declaring a DTD is refused outright.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

from lxml import etree

from safehold.errors import SafeholdError

BUNDLED = Path(__file__).with_name("cyber_tipline.xsd")
XS = {"xs": "http://www.w3.org/2001/XMLSchema"}
MAX_ERRORS = 50

_cache: dict[Path, Schema] = {}
_cache_lock = threading.Lock()


def safe_parser() -> etree.XMLParser:
    """An lxml parser that never loads a DTD, expands an entity or touches the network."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def parse_untrusted(xml: bytes) -> etree._ElementTree:
    """Parse a document from outside; ``ValueError`` (with a readable reason) when it is not acceptable XML."""
    try:
        tree = etree.ElementTree(etree.fromstring(xml, safe_parser()))
    except etree.XMLSyntaxError as e:
        raise ValueError(f"not well-formed XML: {e}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ValueError("a DOCTYPE is not allowed")
    return tree


class Schema:
    """One loaded CyberTipline schema. Load with ``Schema.load(path)``: loaded once per path, thread-safe."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._tree = etree.parse(str(path), safe_parser())
            self._xsd = etree.XMLSchema(self._tree)
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as e:
            raise SafeholdError(
                "cybertip.schema",
                f"cannot load the CyberTipline schema {path}: {e}. Check SAFEHOLD_CYBERTIP_SCHEMA.",
                status=500,
            ) from None
        missing = [n for n in ("report", "fileDetails") if self._find(f"xs:element[@name='{n}']") is None]
        if missing:
            raise SafeholdError(
                "cybertip.schema",
                f"{path} is not a CyberTipline schema (no {', '.join(missing)} element). "
                "Check SAFEHOLD_CYBERTIP_SCHEMA.",
                status=500,
            )
        # lxml keeps the last validation's error log on the schema object: one validation at a time.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | str | None = None) -> Schema:
        """The schema at ``path`` (None: the bundled copy), loaded once per resolved path."""
        key = Path(path).expanduser().resolve() if path else BUNDLED
        with _cache_lock:
            if key not in _cache:
                _cache[key] = cls(key)
            return _cache[key]

    @property
    def bundled(self) -> bool:
        return self.path == BUNDLED

    @cached_property
    def text(self) -> bytes:
        """The schema document itself (what the stand-in serves at ``/xsd``)."""
        return self.path.read_bytes()

    def errors(self, xml: bytes) -> list[str]:
        """Why ``xml`` is not a valid document (empty when it is), as ``line N: message`` strings."""
        try:
            tree = parse_untrusted(xml)
        except ValueError as e:
            return [str(e)]
        with self._lock:
            if self._xsd.validate(tree):
                return []
            found = [f"line {e.line}: {e.message}" for e in self._xsd.error_log]
        return found[:MAX_ERRORS] or ["invalid document"]

    def validate(self, xml: bytes) -> None:
        """Raise ``cybertip.invalid_document`` (422) with the schema's errors unless ``xml`` is valid."""
        if found := self.errors(xml):
            raise SafeholdError(
                "cybertip.invalid_document",
                f"the document does not match the CyberTipline schema: {found[0]}",
                status=422,
                detail={"errors": found, "schema": str(self.path)},
            )

    def enumeration(self, simple_type: str) -> tuple[str, ...]:
        """The values of a named simple type (``incidentType``, ``fileClassification``, ``country`` …) in schema
        order; the empty string some types allow (``country``, ``state``) is left out: omit the element instead."""
        node = self._find(f"xs:simpleType[@name='{simple_type}']")
        if node is None:
            raise KeyError(f"no simple type {simple_type!r} in {self.path}")
        values = (e.get("value") for e in node.iterfind("xs:restriction/xs:enumeration", XS))
        return tuple(v for v in values if v)

    def flags(self, complex_type: str) -> tuple[str, ...]:
        """The boolean flags of an ``xs:all`` type (``reportAnnotations``, ``fileAnnotations``) in schema order."""
        node = self._find(f"xs:complexType[@name='{complex_type}']")
        if node is None:
            raise KeyError(f"no complex type {complex_type!r} in {self.path}")
        return tuple(e.get("name") for e in node.iterfind("xs:all/xs:element", XS))

    def _find(self, path: str):
        return self._tree.getroot().find(path, XS)

    def __repr__(self) -> str:
        return f"Schema({str(self.path)!r})"


__all__ = ["BUNDLED", "Schema", "parse_untrusted", "safe_parser"]
