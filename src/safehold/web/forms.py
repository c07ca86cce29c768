"""Form fields read by a JSON Schema: the console's add forms for the services configured by type (hash exchanges,
screening services), whose settings and credentials each type describes with its own model."""

from __future__ import annotations

import json


def schema_fields(form, prefix: str, schema: dict) -> dict:
    """The form's fields for one type, by its JSON Schema: empty ones left out (the type's default applies),
    values of non-text fields (numbers, lists, true/false) read as JSON."""
    props = schema.get("properties", {})
    out: dict = {}
    for key, raw in form.multi_items():
        if not key.startswith(prefix) or not isinstance(raw, str) or not raw.strip():
            continue
        field = key[len(prefix) :]
        kinds = {s.get("type") for s in props.get(field, {}).get("anyOf", [props.get(field, {})])}
        if "string" in kinds:
            out[field] = raw.strip()
            continue
        try:
            out[field] = json.loads(raw)
        except ValueError:
            out[field] = raw.strip()  # the service's check names the field and what it expects
    return out
