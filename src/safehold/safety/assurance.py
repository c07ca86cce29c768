"""Age-assurance providers: services that estimate or verify a person's age and tell Safehold the result by a
callback, which becomes an ``assurance`` age signal (:mod:`safehold.safety.ages`).

A provider is an :class:`AssuranceProvider`: a ``type``, a pydantic model of its ``Settings`` (credentials
included) and ``verify_callback(headers, body)``, which authenticates the provider's request by whatever the
provider signs it with and answers an :class:`AssuranceResult`, or raises ``age_assurance.bad_signature`` /
``age_assurance.expired`` (401) / ``age_assurance.invalid`` (422). Built in: ``signed_webhook``
(:class:`SignedWebhook`), a generic HMAC-signed JSON callback any provider's relay can speak. Others come from
packages by entry point::

    [project.entry-points."safehold.age_assurance"]
    acme = "acme_safehold:AcmeProvider"          # an AssuranceProvider subclass with type = "acme"

The operator names the providers in ``SAFEHOLD_AGE_ASSURANCE`` (JSON, one object per provider name, with its
``type`` and settings): ``{"standin": {"type": "signed_webhook", "secret": "…"}}``. The callback is
``POST /v1/age-assurance/<name>/callback``: authenticated by the provider's signature, never by an API key.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from safehold import entrypoints
from safehold.actions.signing import verify
from safehold.config import Settings
from safehold.entrypoints import EntryPointLike
from safehold.errors import NotFound, SafeholdError
from safehold.safety.ages import AgeBook

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "safehold.age_assurance"
BUILTIN: dict[str, tuple[str, str]] = {"signed_webhook": ("safehold.safety.assurance", "SignedWebhook")}
#: The largest callback body read (a result is a few hundred bytes).
MAX_CALLBACK_BYTES = 16 * 1024
SIGNATURE_HEADER = "Safehold-Signature"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class AssuranceResult(BaseModel):
    """What a provider found: an age or a band for an account, how (``estimation`` or ``verification``), how
    sure, and the provider's reference for it (the retry key: a reference already recorded is not recorded
    again)."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=128)
    age: float | None = Field(None, ge=0, le=130)
    band: Literal["under13", "13-15", "16-17", "adult"] | None = None
    method: Literal["estimation", "verification"]
    confidence: float = Field(1.0, ge=0.0, le=1.0)
    reference: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _age_or_band(self) -> AssuranceResult:
        if (self.age is None) == (self.band is None):
            raise ValueError("give exactly one of age or band")
        return self


class AssuranceProvider(ABC):
    """One configured age-assurance provider (see the module docstring)."""

    #: The provider type, as named in ``SAFEHOLD_AGE_ASSURANCE``'s ``type``.
    type: ClassVar[str]
    #: Its settings, credentials included; validated when the provider is built.
    Settings: ClassVar[type[BaseModel]]

    def __init__(self, name: str, settings: BaseModel):
        self.name = name
        self.settings = settings

    @abstractmethod
    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> AssuranceResult:
        """The result a callback carries, once its signature is checked (else ``age_assurance.*`` errors)."""


def bad_signature(message: str) -> SafeholdError:
    return SafeholdError("age_assurance.bad_signature", message, status=401)


def invalid(message: str, detail: dict | None = None) -> SafeholdError:
    return SafeholdError("age_assurance.invalid", message, status=422, detail=detail)


class SignedWebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=16, max_length=512, repr=False, description="The shared HMAC secret.")
    window_seconds: int = Field(300, ge=10, le=3600, description="How old (or early) a signed timestamp may be.")


class SignedWebhook(AssuranceProvider):
    """The generic provider: ``Safehold-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw
    body)>`` — the scheme of Safehold's own webhooks (:mod:`safehold.actions.signing`) — over a JSON body with the
    fields of :class:`AssuranceResult`. A timestamp more than ``window_seconds`` from now is refused
    (``age_assurance.expired``), so a captured request cannot be replayed later; within the window a replay
    carries a reference already recorded and changes nothing."""

    type = "signed_webhook"
    Settings = SignedWebhookSettings

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> AssuranceResult:
        header = headers.get(SIGNATURE_HEADER.lower()) or headers.get(SIGNATURE_HEADER) or ""
        if not header:
            raise bad_signature(f"The callback has no {SIGNATURE_HEADER} header.")
        window = self.settings.window_seconds
        if not verify(self.settings.secret, header, body, tolerance=float("inf")):
            raise bad_signature(f"The {SIGNATURE_HEADER} header does not sign this body with the provider's secret.")
        if not verify(self.settings.secret, header, body, tolerance=window):
            raise SafeholdError(
                "age_assurance.expired",
                f"The signed timestamp is more than {window} s from now: a replay, or a clock that is off.",
                status=401,
            )
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise invalid(f"The callback body is not JSON: {exc}") from exc
        try:
            return AssuranceResult.model_validate(data)
        except ValidationError as exc:
            errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
            raise invalid("The callback body is not an assurance result.", {"errors": errors}) from exc


def sign_callback(secret: str, result: dict, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers a ``signed_webhook`` provider sends (used by the stand-in; a relay may copy it)."""
    from safehold.actions.signing import sign

    body = json.dumps(result, separators=(",", ":")).encode()
    t = int(time.time()) if timestamp is None else timestamp
    return body, {SIGNATURE_HEADER: sign(secret, body, t), "Content-Type": "application/json"}


def _provider_class(type_: str, entry_points: Iterable[EntryPointLike] | None) -> type[AssuranceProvider]:
    if type_ in BUILTIN:
        module, cls = BUILTIN[type_]
        return getattr(importlib.import_module(module), cls)
    eps = list(entry_points) if entry_points is not None else entrypoints.installed(ENTRY_POINT_GROUP)
    for ep in eps:
        try:
            cls = entrypoints.load(ep, "age-assurance")
        except SafeholdError as exc:
            log.warning("skipping %s", exc.message)
            continue
        if isinstance(cls, type) and issubclass(cls, AssuranceProvider) and getattr(cls, "type", None) == type_:
            return cls
    raise misconfigured(f"no built-in or installed age-assurance provider has type {type_!r}")


def misconfigured(message: str) -> SafeholdError:
    return SafeholdError("age_assurance.misconfigured", f"SAFEHOLD_AGE_ASSURANCE: {message}", status=500)


def load(config: Mapping[str, Mapping[str, Any]], *, entry_points=None) -> dict[str, AssuranceProvider]:
    """The providers ``config`` names, built and validated (``age_assurance.misconfigured`` otherwise)."""
    out: dict[str, AssuranceProvider] = {}
    for name, cfg in config.items():
        if not _NAME_RE.match(name):
            raise misconfigured(f"provider name {name!r} must be lower-case [a-z][a-z0-9_-]*")
        if not isinstance(cfg, Mapping) or not isinstance(cfg.get("type"), str):
            raise misconfigured(f"provider {name!r} needs a 'type'")
        cls = _provider_class(cfg["type"], entry_points)
        try:
            settings = cls.Settings.model_validate({k: v for k, v in cfg.items() if k != "type"})
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) + f" ({e['msg']})" for e in exc.errors())
            raise misconfigured(f"provider {name!r}: {fields}") from exc
        out[name] = cls(name, settings)
    return out


class AssuranceService:
    """Turns a provider's callback into an ``assurance`` signal of the account it names."""

    def __init__(self, book: AgeBook, settings: Settings):
        self.book = book
        self.settings = settings
        self._config: object = None
        self._providers: dict[str, AssuranceProvider] = {}
        self.providers  # noqa: B018 - built now: a misconfigured provider stops the start, not the first callback

    @property
    def providers(self) -> dict[str, AssuranceProvider]:
        """The providers ``settings.age_assurance`` names, built again when the setting is replaced."""
        config = self.settings.age_assurance
        if config is not self._config:
            self._providers, self._config = load(config), config
        return self._providers

    def callback(self, name: str, headers: Mapping[str, str], body: bytes) -> dict:
        """Verify and record one callback; ``{"signal", "duplicate", "age"}`` as :meth:`AgeBook.add` answers."""
        provider = self.providers.get(name)
        if provider is None:
            raise NotFound("age_assurance.unknown_provider", f"No age-assurance provider {name!r} is configured.")
        if len(body) > MAX_CALLBACK_BYTES:
            raise SafeholdError(
                "request.too_large", f"A callback body is at most {MAX_CALLBACK_BYTES:,} bytes.", status=413
            )
        result = provider.verify_callback(headers, body)
        return self.book.add(
            f"assurance:{name}",
            result.account_id,
            "assurance",
            age=result.age,
            band=result.band,
            confidence=result.confidence,
            method=result.method,
            provider=name,
            reference=result.reference,
        )
