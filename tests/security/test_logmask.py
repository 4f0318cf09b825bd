"""Identifiers never reach a log in clear: the masking filter and the uvicorn log config."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from rhip.security.logmask import MaskingFilter, mask_text, uvicorn_log_config

RID = "440304199001011233"
PHONE = "13812345678"


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (f"resident {RID} seen", "resident 4403**********1233 seen"),
        ("legacy 440304900101123 id", "legacy 4403*******1123 id"),
        (f"call {PHONE}", "call 138****5678"),
        (f"call +86 {PHONE}", "call +86 138****5678"),
        (f"/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3|{RID}&_count=5",
         "/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3|4403**********1233&_count=5"),
        ("/fhir/Patient/$ihe-pix?sourceIdentifier=urn%3Arhip%3Aid%3Amrn%3AX%7CMRN000123",
         "/fhir/Patient/$ihe-pix?sourceIdentifier=urn%3Arhip%3Aid%3Amrn%3AX%7C*****0123"),
        ("/api/x?phone=0755-1234&name=x", "/api/x?phone=*****1234&name=x"),
        ("/api/x?rid=12345", "/api/x?rid=*****"),
        ("order 2024 total 1234567", "order 2024 total 1234567"),  # short numbers stay
    ],
)  # fmt: skip
def test_mask_text(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked


def _capture(logger_name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger(logger_name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_filter_masks_message_args_and_traceback() -> None:
    logger, stream = _capture("rhip.test.mask")
    logger.info("patient %s phone %s", RID, PHONE)
    logger.info("dict form %(rid)s", {"rid": RID})
    try:
        raise ValueError(f"bad id {RID}")
    except ValueError:
        logger.exception("failed")
    out = stream.getvalue()
    assert RID not in out and PHONE not in out
    # message, dict argument, exception text (the source line shows only the f-string)
    assert out.count("4403**********1233") == 3 and "138****5678" in out


def test_uvicorn_access_records_keep_their_shape() -> None:
    from uvicorn.logging import AccessFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("uvicorn.access.test")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    path = f"/fhir/Patient?identifier={RID}"
    logger.info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET", path, "1.1", 200)
    out = stream.getvalue()
    assert RID not in out and "identifier=4403**********1233" in out and " 200" in out


def test_uvicorn_log_config_installs_the_filter() -> None:
    config = uvicorn_log_config()
    assert all("rhip_mask" in h["filters"] for h in config["handlers"].values())
    logging.config.dictConfig(config)
    handlers = logging.getLogger("uvicorn.access").handlers
    assert handlers and all(any(isinstance(f, MaskingFilter) for f in h.filters) for h in handlers)
