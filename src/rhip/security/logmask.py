"""Personal identifiers out of logs (日志脱敏): a logging filter and a uvicorn log config.

Masks, in every message, argument and traceback that passes a handler:

* resident-ID-like strings (18 characters with a plausible birth date, or 15 digits):
  ``440304199001011234`` → ``4403**********1234``;
* mainland mobile numbers: ``13812345678`` → ``138****5678``;
* the values of identifier query parameters (``identifier``, ``sourceIdentifier``,
  ``patient.identifier``, ``phone`` …), system kept: ``identifier=urn:oid:…|****``.

>>> mask_text("GET /fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3%7C440304199001011234")
'GET /fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3%7C4403**********1234'
>>> mask_text("call 13812345678 about 44030419900101123X")
'call 138****5678 about 4403**********123X'
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from rhip.kernel.ids import mask

_RID18 = r"\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
RESIDENT_ID = re.compile(rf"(?<!\d)(?:{_RID18}|\d{{15}})(?![\dXx])")
PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)")
IDENTIFIER_PARAMS = (
    "identifier", "sourceIdentifier", "patient.identifier", "patient-identifier",
    "subject.identifier", "rid", "resident_id", "id_number", "idcard", "phone", "telecom", "mobile",
)  # fmt: skip
_PARAM = re.compile(
    r"(?P<key>(?:^|(?<=[?&;\s]))(?:" + "|".join(re.escape(p) for p in IDENTIFIER_PARAMS) + r")"
    r"(?::[A-Za-z-]+)?=)(?P<value>[^&\s\"']*)",
    re.IGNORECASE,
)
_SEP = re.compile(r"\||%7C", re.IGNORECASE)


def _mask_param(m: re.Match[str]) -> str:
    value = m.group("value")
    parts = _SEP.split(value)
    seps = _SEP.findall(value)
    if len(parts) > 1:  # system|value: keep the system, mask the value
        return (
            m.group("key")
            + "".join(parts[:-1][i] + seps[i] for i in range(len(seps)))
            + _mask_code(parts[-1])
        )
    return m.group("key") + _mask_code(value)


def _mask_code(value: str) -> str:
    """A resident ID as ``4403**********1234``; any other identifier keeps its last 4 only."""
    if not value:
        return value
    if RESIDENT_ID.fullmatch(value):
        return mask(value)
    return mask(value, keep_head=0, keep_tail=4) if len(value) > 6 else "*" * len(value)


def mask_text(text: str) -> str:
    """``text`` with identifier parameters, resident IDs and phone numbers masked."""
    if not text:
        return text
    text = _PARAM.sub(_mask_param, text)
    text = RESIDENT_ID.sub(lambda m: mask(m.group(0)), text)
    return PHONE.sub(lambda m: mask(m.group(0), keep_head=len(m.group(0)) - 8, keep_tail=4), text)


def _mask_value(value: Any) -> Any:
    # strings only: other types keep their type so %d and friends still format
    return mask_text(value) if isinstance(value, str) else value


class MaskingFilter(logging.Filter):
    """Mask message, arguments (shape kept: uvicorn's access formatter unpacks a 5-tuple) and
    the rendered traceback of every record. Attach to handlers, so records from child loggers
    are covered too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_mask_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _mask_value(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of ``logger`` (default: root) and of uvicorn's loggers."""
    targets = [logger or logging.getLogger()]
    targets += [logging.getLogger(n) for n in ("uvicorn", "uvicorn.access", "uvicorn.error")]
    for lg in targets:
        for handler in lg.handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging config with the masking filter on each handler: pass it as
    ``uvicorn.run(..., log_config=uvicorn_log_config())``."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["rhip_mask"] = {"()": f"{__name__}.MaskingFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("rhip_mask")
    return config
