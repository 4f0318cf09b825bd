"""Errors map to OperationOutcome; identifiers hash and encrypt under the operator's key."""

from __future__ import annotations

from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import InvalidInput, ManyErrors, NotFound


def test_error_maps_to_operation_outcome_with_path() -> None:
    oo = InvalidInput(
        "birth date in the future", expression="Patient.birthDate"
    ).to_operation_outcome()
    assert oo == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "birth date in the future",
                "expression": ["Patient.birthDate"],
            }
        ],
    }
    assert NotFound("x").status == 404


def test_many_errors_report_every_issue() -> None:
    err = ManyErrors([InvalidInput("a"), NotFound("b")])
    assert [i["diagnostics"] for i in err.to_operation_outcome()["issue"]] == ["a", "b"]
    assert err.status == 400  # mixed kinds: a plain bad request
    assert ManyErrors([InvalidInput("a"), InvalidInput("b")]).status == 422


def test_hash_depends_on_key_and_system_and_ciphertext_hides_value() -> None:
    a, b = IdentifierVault("key-a"), IdentifierVault("key-b")
    value = "440304199005171234"
    assert a.hash("s", value) != b.hash("s", value)
    assert a.hash("s", value) != a.hash("t", value)
    token = a.encrypt(value)
    assert value not in token
    assert a.decrypt(token) == value
