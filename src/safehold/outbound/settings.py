"""What every configured outbound service (a hash exchange, a screening service) does with the settings and
credentials an admin gives it: read them with the service's model, refusing with the fields and reasons but never
the values given, and turn the credentials into the plain values to seal (pydantic shows a ``SecretStr`` as
``**********``; what is sealed must be the secret itself), sealed with the instance key and the service's name as
associated data so a sealed blob cannot be moved to another service's row."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from safehold.errors import SafeholdError
from safehold.store.sealing import Sealer


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
