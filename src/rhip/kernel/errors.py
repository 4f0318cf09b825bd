"""One error family for the whole platform.

Every rhip error carries an HTTP status, a FHIR OperationOutcome issue type and, where it applies,
the path of the failing element (``expression``), so routers turn it into an OperationOutcome and
HL7 v2 paths into an ACK with ERR without knowing which context raised it.
"""

from __future__ import annotations

from typing import Any


class RhipError(Exception):
    """Base of every rhip error: a message a person can act on, never a stack trace."""

    status: int = 400
    issue_type: str = "processing"  # FHIR IssueType (http://hl7.org/fhir/issue-type)
    severity: str = "error"

    def __init__(self, message: str, *, expression: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.expression = expression
        if code is not None:
            self.issue_type = code

    def to_operation_outcome(self) -> dict[str, Any]:
        """The FHIR R4 OperationOutcome for this error."""
        return operation_outcome([self.issue()])

    def issue(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "severity": self.severity,
            "code": self.issue_type,
            "diagnostics": self.message,
        }
        if self.expression:
            item["expression"] = [self.expression]
        return item


class InvalidInput(RhipError):
    """The request is understood but a value in it is wrong (bad ID, bad date, unknown code)."""

    status = 422
    issue_type = "invalid"


class MalformedInput(RhipError):
    """The request cannot be parsed at all (not JSON, wrong resourceType)."""

    status = 400
    issue_type = "structure"


class NotSupported(RhipError):
    """An operation, parameter or resource type rhip does not offer."""

    status = 400
    issue_type = "not-supported"


class NotFound(RhipError):
    status = 404
    issue_type = "not-found"


class Conflict(RhipError):
    status = 409
    issue_type = "conflict"


class Forbidden(RhipError):
    status = 403
    issue_type = "forbidden"


class Unauthorized(RhipError):
    status = 401
    issue_type = "login"


class ManyErrors(RhipError):
    """Several problems found in one input; all are reported together."""

    def __init__(self, errors: list[RhipError]):
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors
        statuses = {e.status for e in errors}
        self.status = statuses.pop() if len(statuses) == 1 else 400  # mixed: a plain bad request

    def to_operation_outcome(self) -> dict[str, Any]:
        return operation_outcome([e.issue() for e in self.errors])


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}
