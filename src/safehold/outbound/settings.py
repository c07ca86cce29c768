"""What every configured outbound service (a hash exchange, a screening service) does with the settings and
credentials an admin gives it: read them with the service's model, refusing with the fields and reasons but never
the values given, and turn the credentials into the plain values to seal (pydantic shows a ``SecretStr`` as
``**********``; what is sealed must be the secret itself), sealed with the instance key and the service's name as
associated data so a sealed blob cannot be moved to another service's row."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from safehold.errors import SafeholdError
from safehold.store.sealing import Sealer

#: A configured service's name (an exchange's, a screening service's): what the API and the CLI accept.
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


def validated(model: type[BaseModel], data: Any, code: str, what: str) -> BaseModel:
    """``data`` read by ``model``; refusals (``code``) name the fields and the reasons, never the values given."""
    if not isinstance(data, dict):
        raise SafeholdError(code, f"{what} must be an object of named fields.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(all)", "problem": e["msg"]}
            for e in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        said = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:10])
        raise SafeholdError(code, f"Invalid {what}: {said}.", detail={"fields": problems[:50]}) from None


def secret_values(valid: BaseModel) -> dict:
    """The model's values as JSON, secrets in clear (for sealing, never for showing)."""
    return {
        k: v.get_secret_value() if isinstance(v := getattr(valid, k), SecretStr) else dumped
        for k, dumped in valid.model_dump(mode="json").items()
    }


def seal(sealer: Sealer, name: str, values: dict | None) -> str | None:
    """``values`` sealed for the service called ``name`` (``None``: nothing to seal)."""
    return None if values is None else sealer.seal_text(json.dumps(values), aad=name.encode())


def unseal(sealer: Sealer, name: str, sealed: str) -> dict:
    """What :func:`seal` sealed for ``name``."""
    return json.loads(sealer.open_text(sealed, aad=name.encode()))


def check_name(name: object, code: str, what: str) -> str:
    """``name`` if it is a service name (:data:`NAME_PATTERN`), else ``code`` saying what ``what`` (``A screening
    service name``) must be."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SafeholdError(
            code, f"{what} is 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit."
        )
    return name


def settings_of(model: type[BaseModel], data: dict, code: str, what: str) -> dict:
    """``data`` read by the service type's settings ``model`` (:func:`validated`), as the JSON to store."""
    return validated(model, data, code, what).model_dump(mode="json")


def credentials_to_seal(model: type[BaseModel], data: dict, code: str, what: str) -> dict | None:
    """``data`` read by the service type's credentials ``model`` (:func:`validated`), secrets in clear to be
    sealed; ``None`` when every field was left out (nothing to seal)."""
    given = secret_values(validated(model, data, code, what))
    return given if any(v is not None for v in given.values()) else None
