"""Identifier systems fixed for every interface (FHIR ``identifier.system``, HL7 v2 PID-3 types)."""

from __future__ import annotations

# 居民身份证 resident ID card number: the WS/T 500 OID for the ID-document number
RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
# 统一社会信用代码 institution's unified social credit code (GB 32100-2015)
USCC = "urn:rhip:id:uscc"
# an institution's own patient number (MRN): the system carries the institution's credit code
MRN_PREFIX = "urn:rhip:id:mrn:"
PASSPORT = "urn:rhip:id:passport"
HKMO_PERMIT = "urn:rhip:id:hkmo-permit"  # 港澳居民来往内地通行证
TW_PERMIT = "urn:rhip:id:tw-permit"  # 台湾居民来往大陆通行证
INSURANCE_CARD = "urn:rhip:id:insurance"  # 医保卡 medical-insurance card

# HL7 v2 PID-3 identifier type codes
HL7_RESIDENT_ID = "NNCHN"
HL7_MRN = "MR"

# identifiers stored only as keyed hash + encrypted value, never in clear
SENSITIVE = frozenset({RESIDENT_ID, PASSPORT, HKMO_PERMIT, TW_PERMIT})


def mrn_system(credit_code: str) -> str:
    return MRN_PREFIX + credit_code
