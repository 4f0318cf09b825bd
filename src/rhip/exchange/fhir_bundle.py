"""``POST /fhir`` transaction and batch Bundles (事务/批量): inbox first, then apply, then answer.

* The Bundle is stored raw in the inbox (channel ``fhir``) before anything else; a refused or
  unreadable one is stored as failed. The idempotency key is (sender, ``Bundle.identifier``):
  a resend gets the original's exact response and is not applied again.
* transaction: all or nothing — any bad entry fails the request with an OperationOutcome naming
  every failing element; nothing is written (Patient entries are registered only after all
  other entries passed). batch: each entry on its own; good ones applied, bad ones answered
  with an OperationOutcome in ``response.outcome``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, or_, select
from sqlalchemy.exc import IntegrityError

from rhip.exchange import fhir_ingest, inbox
from rhip.exchange.fhir_ingest import Channel, Entry
from rhip.exchange.fhir_refs import MpiLookup, PatientLookup
from rhip.exchange.fhir_validate import (
    FhirMalformed,
    FhirNotSupported,
    SenderUnknown,
    element_path,
)
from rhip.exchange.inbox import Arrival
from rhip.exchange.patients import PatientResolver, mpi_resolver
from rhip.exchange.senders import Sender
from rhip.kernel.clock import now
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import RhipError, operation_outcome
from rhip.registry.models import institutions

log = logging.getLogger("rhip.exchange.fhir")
CHANNEL = "fhir"
_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 403: "403 Forbidden",
                404: "404 Not Found", 412: "412 Precondition Failed",
                422: "422 Unprocessable Entity", 500: "500 Internal Server Error"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


def find_sender(conn: Connection, claimed: str | None) -> Sender:
    """The registered, active institution named by id or credit code: over HTTP the integrator's
    own (``rhip.api.fhir.reports`` checks the token first), from the CLI ``--sender``."""
    claimed = (claimed or "").strip()
    if not claimed:
        raise SenderUnknown("the sending institution (id or credit code) is required")
    t = institutions.c
    row = conn.execute(
        select(t.id, t.credit_code, t.name, t.active).where(
            or_(t.id == claimed, t.credit_code == claimed.upper())
        )
    ).first()
    if row is None:
        raise SenderUnknown(f"sender {claimed!r} is not a registered institution")
    if not row.active:
        raise SenderUnknown(f"institution {row.credit_code} is deregistered and may not send")
    return Sender(row.id, row.credit_code, row.name)


class FhirIngest:
    """The FHIR REST and NDJSON paths into the platform for one database."""

    def __init__(
        self,
        engine: Engine,
        resolver: PatientResolver | None = None,
        *,
        vault: IdentifierVault,
        lookup: PatientLookup | None = None,
    ):
        self.engine = engine
        self.resolver = resolver or mpi_resolver(vault)
        self.lookup = lookup or MpiLookup(vault)
        sqlite = engine.dialect.name == "sqlite"
        self.lock = threading.Lock() if sqlite else contextlib.nullcontext()

    def channel(self, sender: Sender) -> Channel:
        return Channel(self.engine, sender, self.resolver, self.lookup)

    def sender(self, claimed: str | None, arrival: Arrival) -> Sender:
        """The verified sender; a refusal is stored in the inbox as failed, then raised."""
        try:
            with self.engine.connect() as conn:
                return find_sender(conn, claimed)
        except SenderUnknown as exc:
            self.store_failed(arrival, exc)
            raise

    def store_failed(self, arrival: Arrival, exc: RhipError) -> int:
        body = json.dumps(exc.to_operation_outcome(), ensure_ascii=False).encode()
        with self.lock, self.engine.begin() as conn:
            return inbox.store_failed(conn, arrival, exc.message, body, _code(exc.status))

    def admit(self, arrival: Arrival, key: str | None) -> int | None:
        """Store the message as received; None when ``key`` is taken (a duplicate)."""
        with self.lock, self.engine.connect() as conn:
            try:
                message_id = inbox.store_received(conn, arrival, key)
            except IntegrityError:
                conn.rollback()
                return None
            conn.commit()
            return message_id

    # -- POST /fhir ------------------------------------------------------------------------------
    def receive_bundle(self, raw: bytes, claimed: str | None, peer: str = "") -> Answer:
        """Store, apply and answer one Bundle; every refusal is an Answer with its outcome."""
        arrival = Arrival(raw, CHANNEL, peer, sender=(claimed or "")[:64], received_at=now())
        try:
            sender = self.sender(claimed, arrival)
        except SenderUnknown as exc:
            return Answer(exc.status, exc.to_operation_outcome())
        arrival = replace(arrival, sender=sender.credit_code)
        try:
            bundle = read_bundle(raw)
        except RhipError as exc:
            self.store_failed(replace(arrival, message_type="Bundle"), exc)
            return Answer(exc.status, exc.to_operation_outcome())
        ident = bundle.get("identifier") or {}
        control = "|".join(p for p in (ident.get("system"), ident.get("value")) if p) or None
        arrival = replace(arrival, control_id=control, message_type=f"Bundle/{bundle['type']}")
        key = inbox.dedup_key(CHANNEL, sender.credit_code, control) if control else None
        message_id = self.admit(arrival, key)
        if message_id is None:
            return self._duplicate(arrival, key, sender)
        return self._process(message_id, bundle, sender)

    def _duplicate(self, arrival: Arrival, key: str, sender: Sender) -> Answer:
        with self.lock, self.engine.begin() as conn:
            original = inbox.by_key(conn, key)
        if original["status"] == "received" or (original["ack_code"] or "").startswith("5"):
            # interrupted, or failed for want of the server: finish the original now
            bundle = read_bundle(original["raw"])
            self._process(original["id"], bundle, sender, ("received", "failed"))
            with self.lock, self.engine.begin() as conn:
                original = inbox.get(conn, original["id"])
        with self.lock, self.engine.begin() as conn:
            inbox.store_duplicate(conn, arrival, original)
        body = json.loads(original["ack"])
        return Answer(replay_status(original["ack_code"], body), body)

    def _process(
        self, message_id: int, bundle: dict[str, Any], sender: Sender, statuses=("received",)
    ) -> Answer:
        atomic = bundle["type"] == "transaction"
        entries = bundle_entries(bundle)
        try:
            plan = fhir_ingest.prepare(self.channel(sender), entries, atomic=atomic)
            with self.lock, self.engine.begin() as conn:
                if not inbox.claim(conn, message_id, statuses):
                    row = inbox.get(conn, message_id)
                    body = json.loads(row["ack"])
                    return Answer(replay_status(row["ack_code"], body), body)
                fhir_ingest.write(conn, plan, sender.institution_id, message_id)
                fhir_ingest.settle(plan)
                answer = Answer(200, response_bundle(bundle["type"], entries))
                self._mark(conn, message_id, sender, answer, plan)
            return answer
        except RhipError as exc:
            answer = Answer(exc.status, exc.to_operation_outcome())
            error = exc.message
        except Exception as exc:  # a bug or an outage: kept in the inbox to be re-processed
            log.exception("inbox message %s: FHIR processing failed", message_id)
            answer = Answer(500, _internal(message_id, exc))
            error = answer.body["issue"][0]["diagnostics"]
        with self.lock, self.engine.begin() as conn:
            self._mark(conn, message_id, sender, answer, None, error=error)
        return answer

    def _mark(self, conn, message_id, sender, answer: Answer, plan, error=None) -> None:
        failed = [e for e in (plan.entries if plan else []) if e.error is not None]
        patient = next((e.location for e in (plan.entries if plan else [])
                        if e.location and e.location.startswith("Patient/")), None)  # fmt: skip
        inbox.mark(
            conn, message_id, "failed" if error else "processed",
            count_attempt=error is not None,
            ack=json.dumps(answer.body, ensure_ascii=False).encode(),
            ack_code=_code(answer.status),
            error=error or ("; ".join(e.error.message for e in failed)[:4000] or None),
            institution_id=sender.institution_id, sender=sender.credit_code,
            patient_id=patient.split("/", 1)[1] if patient else None,
        )  # fmt: skip


def read_bundle(raw: bytes) -> dict[str, Any]:
    """The body as a transaction or batch Bundle, or a specific 400."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FhirMalformed(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        got = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        raise FhirMalformed(
            f"POST /fhir takes a Bundle; resourceType is {got!r}", expression="Bundle.resourceType"
        )
    if data.get("type") not in ("transaction", "batch"):
        raise FhirNotSupported(
            f"Bundle.type {data.get('type')!r}: POST /fhir takes a transaction or batch Bundle",
            expression="Bundle.type",
        )
    if not isinstance(data.get("entry", []), list):
        raise FhirMalformed("Bundle.entry must be a list", expression="Bundle.entry")
    return data


def bundle_entries(bundle: dict[str, Any]) -> list[Entry]:
    """Entries with their paths; a transaction is one unit, each batch entry its own."""
    atomic = bundle["type"] == "transaction"
    out = []
    for i, raw in enumerate(bundle.get("entry") or []):
        path = f"Bundle.entry[{i}]"
        raw = raw if isinstance(raw, dict) else {}
        entry = Entry(
            f"{path}.resource", raw.get("resource"), 0 if atomic else i, raw.get("fullUrl")
        )
        method = ((raw.get("request") or {}).get("method") or "POST").upper()
        if method not in ("POST", "PUT"):
            entry.error = FhirNotSupported(
                f"{path}.request.method {method}: only POST and PUT entries are accepted",
                expression=element_path(path, ("request", "method")),
            )
        elif entry.resource is None:
            entry.error = FhirMalformed(
                f"{path}.resource is missing", expression=f"{path}.resource"
            )
        out.append(entry)
    return out


def response_bundle(kind: str, entries: list[Entry]) -> dict[str, Any]:
    """A transaction-response or batch-response Bundle, one entry per request entry."""
    out = []
    for e in entries:
        response: dict[str, Any] = {"status": e.status or "200 OK"}
        if e.error is not None:
            response["status"] = _STATUS_TEXT.get(e.error.status, str(e.error.status))
            response["outcome"] = e.error.to_operation_outcome()
        elif e.location:
            response["location"] = e.location
        if e.error is None and e.note:
            response["outcome"] = operation_outcome(
                [{"severity": "information", "code": "informational", "diagnostics": e.note}]
            )
        out.append({"response": response})
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": out}


def replay_status(code: str | None, body: dict[str, Any]) -> int:
    """The HTTP status of a stored answer: its class (``2x``) refined from the body's issue."""
    if (code or "").startswith("2"):
        return 200
    issue = ((body.get("issue") or [{}])[0]).get("code")
    by_issue = {"forbidden": 403, "not-found": 404, "invalid": 422, "multiple-matches": 412,
                "exception": 500}  # fmt: skip
    return by_issue.get(issue, 400)


def _code(status: int) -> str:
    return f"{status // 100}x"  # inbox ack_code of HTTP paths: the status class


def _internal(message_id: int, exc: Exception) -> dict[str, Any]:
    return operation_outcome([{
        "severity": "fatal", "code": "exception",
        "diagnostics": f"internal error ({exc.__class__.__name__}); the Bundle is kept as inbox "
        f"message {message_id} and will be re-processed",
    }])  # fmt: skip
