"""Exchange test helpers: a registered sender, a stub patient resolver, HL7 message builders.

The stub resolver stands in for the MPI (tested in tests/identity): a patient's golden id is
derived from its first identifier, so the same patient gets the same id in every process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Connection, Engine, insert

from rhip.exchange.patients import PatientRegistration
from rhip.kernel.errors import NotFound
from rhip.kernel.ids import make_credit_code
from rhip.registry.models import districts, institutions

SENDER = make_credit_code("12440300MB2F3456")  # 17 characters + check
OTHER = make_credit_code("12440300MB2F3457")
RID = "11010519491231002X"  # a valid resident ID (GB 11643 example)
UNKNOWN_MRN = "NOBODY"  # the stub resolver raises NotFound for this MRN


def add_institution(engine: Engine, credit_code: str = SENDER, cidrs: str = "127.0.0.0/8,::1/128"):
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        if not conn.execute(districts.select().where(districts.c.code == "440304")).first():
            conn.execute(insert(districts).values(code="440304", name="福田区"))
        conn.execute(
            insert(institutions).values(
                id=f"org-{credit_code[-6:]}",
                credit_code=credit_code,
                name="深圳市测试医院",
                type="public_hospital",
                district_code="440304",
                connection_status="connected",
                feeds="{}",
                functions="{}",
                allow_cidrs=cidrs,
                created_at=now,
                updated_at=now,
            )
        )
    return f"org-{credit_code[-6:]}"


def resolver(conn: Connection, reg: PatientRegistration) -> str:
    first = reg.identifiers[0]
    if first.value == UNKNOWN_MRN:
        raise NotFound("no patient with this medical record number in the MPI")
    return "p-" + hashlib.sha256(f"{first.system}|{first.value}".encode()).hexdigest()[:16]


def patient_id(system: str, value: str) -> str:
    return "p-" + hashlib.sha256(f"{system}|{value}".encode()).hexdigest()[:16]


def oru(
    control_id: str = "MSG0001",
    *,
    sender: str = SENDER,
    pid3: str = f"{RID}^^^^NNCHN~M123^^^^MR",
    status: str = "F",
    filler: str = "F1001",
    obr22: str = "20240301103000",
    obx: list[str] | None = None,
    charset: str = "UNICODE UTF-8",
    seps: str = "|^~\\&",
    message_type: str = "ORU^R01^ORU_R01",
    extra: list[str] | None = None,
) -> str:
    """An ORU^R01 lab result in the default delimiters, re-delimited to ``seps``."""
    obx = obx if obx is not None else [
        "OBX|1|NM|2345-7^葡萄糖^LN||5.6|mmol/L|3.9-6.1|N|||F|||20240301080000",
        "OBX|2|SN|2093-3^胆固醇^LN||<^0.5|mmol/L|<5.2|L|||F",
        "OBX|3|CWE|882-1^ABO血型^LN||A^A型^LN||||||F",
        "OBX|4|ST|5778-6^尿液颜色^LN||淡黄色||||||F",
    ]  # fmt: skip
    lines = [
        f"MSH|^~\\&|LIS|{sender}|RHIP|RHIP|20240301103000||{message_type}|{control_id}|P|2.5.1"
        f"||||||{charset}",
        f"PID|1||{pid3}||张^三||19491231|F",
        f"OBR|1|P1001|{filler}|24331-1^血脂四项^LN|||20240301080000|||||||||||||||"
        f"{obr22}||CH|{status}",
        *obx,
        "SPM|1|||BLD^全血",
        *(extra or []),
    ]
    text = "\r".join(lines)
    if seps != "|^~\\&":
        text = text.translate(str.maketrans("|^~\\&", seps))
    return text


def frame(message: str | bytes, encoding: str = "utf-8") -> bytes:
    data = message.encode(encoding) if isinstance(message, str) else message
    return b"\x0b" + data + b"\x1c\r"


def ack_fields(ack: bytes, encoding: str = "utf-8") -> dict[str, list[str]]:
    """Segments of an ACK by id, each as its fields (field separator from MSH-1)."""
    text = ack.decode(encoding)
    fs = text[3]
    out: dict[str, list[str]] = {}
    for line in filter(None, text.split("\r")):
        out.setdefault(line[:3], line.split(fs))
    return out


def start_listener(url: str, processes: int = 1, *, stderr=subprocess.DEVNULL):
    """``python -m rhip.exchange.mllp`` on a free port with the stub resolver: (process, port)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rhip.exchange.mllp", "--db", url, "--port", "0",
         "--resolver", "exchange.support:resolver", "--processes", str(processes)],
        stdout=subprocess.PIPE, stderr=stderr, env=env, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    assert "listening" in line, line
    return proc, int(line.rsplit(":", 1)[1])
