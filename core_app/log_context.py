"""What a log line knows of the request or event it belongs to (the plan tags each line with
`merchant_id`, `shop_domain`, `service_name` and `locale`; docs/decisions.md D149).

Transports and `guard()` bind what they learn into a context variable; `ContextFilter`, on the log
handler, copies it onto every record of that request or event (a field the call passes itself in
`extra` wins). Never PII: a merchant id, the shop's myshopify domain and a locale from the supported
list are business identifiers, and nothing else is bound here.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token

from core_app.domain.program_settings import SUPPORTED_LOCALES

FIELDS = ("merchant_id", "shop_domain", "locale")
_bound: ContextVar[dict[str, str] | None] = ContextVar("core_log_context", default=None)
_SUPPORTED = {locale.lower(): locale for locale in SUPPORTED_LOCALES}  # zh-cn -> zh-CN

Bound = Token[dict[str, str] | None]


def bind(
    *, merchant_id: str | None = None, shop_domain: str | None = None, locale: str | None = None
) -> Bound:
    """Add the given fields to the current context's; `unbind(token)` restores what was there."""
    fields = dict(_bound.get() or {})
    if merchant_id:
        fields["merchant_id"] = merchant_id
    if shop_domain:
        fields["shop_domain"] = shop_domain
    if locale:
        fields["locale"] = locale
    return _bound.set(fields)


def unbind(token: Bound) -> None:
    _bound.reset(token)


def bound() -> dict[str, str]:
    return dict(_bound.get() or {})


def locale_of(accept_language: str | None) -> str | None:
    """The first supported locale of an `Accept-Language` header (`fr-CA,fr;q=0.8` -> `fr`), in the
    header's order; None when it names none we support (so nothing a client sends is logged as is)."""
    if not accept_language:
        return None
    for part in accept_language.split(",")[:8]:
        tag = part.split(";", 1)[0].strip().lower()
        found = _SUPPORTED.get(tag) or _SUPPORTED.get(tag.split("-", 1)[0])
        if found:
            return found
    return None


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record passing the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _bound.get()
        if fields:
            for name, value in fields.items():
                if getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True
