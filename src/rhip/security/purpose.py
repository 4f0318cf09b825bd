"""Purpose of use (使用目的), HL7 v3 PurposeOfUse value set, as sent in ``X-Purpose-Of-Use``.

Codes come from http://terminology.hl7.org/ValueSet/v3-PurposeOfUse (v3 ActReason). The header
holds a bare code or ``system|code``.

>>> parse("TREAT"), parse("http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT")
('TREAT', 'ETREAT')
"""

from __future__ import annotations

from rhip.kernel.errors import MalformedInput

SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
HEADER = "X-Purpose-Of-Use"

TREAT = "TREAT"
ETREAT = "ETREAT"
BTG = "BTG"
PATRQT = "PATRQT"

PURPOSES: dict[str, str] = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment",  # 紧急救治: break-glass (破窗)
    "BTG": "break the glass",
    "COC": "continuity of care",
    "CAREMGT": "care management",
    "POPHLTH": "population health",
    "HPAYMT": "healthcare payment",
    "COVERAGE": "coverage under policy or program",
    "HOPERAT": "healthcare operations",
    "HQUALIMP": "health quality improvement",
    "HSYSADMIN": "health system administration",
    "HACCRED": "health accreditation",
    "HLEGAL": "legal",
    "HRESCH": "healthcare research",
    "CLINTRL": "clinical trial",
    "PUBHLTH": "public health",
    "DISASTER": "disaster",
    "THREAT": "threat",
    "PATRQT": "patient requested",
    "FAMRQT": "family requested",
    "PWATRNY": "power of attorney",
    "SUPNWK": "support network",
    "HMARKT": "healthcare marketing",
    "HDIRECT": "directory",
    "TRAIN": "training",
}
BREAK_GLASS = frozenset({ETREAT, BTG})


def parse(value: str | None) -> str | None:
    """The code of a header value, None when absent; an unknown code is a 400."""
    if value is None or not value.strip():
        return None
    system, sep, code = value.strip().rpartition("|")
    if sep and system not in ("", SYSTEM):
        raise MalformedInput(
            f"{HEADER}: code system must be {SYSTEM}", expression=HEADER, code="code-invalid"
        )
    code = code.strip().upper()
    if code not in PURPOSES:
        raise MalformedInput(
            f"{HEADER}: unknown purpose of use; use a code of the HL7 v3 PurposeOfUse value set "
            f"such as TREAT, ETREAT, HPAYMT, HOPERAT, PATRQT",
            expression=HEADER,
            code="code-invalid",
        )
    return code
