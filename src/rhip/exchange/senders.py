"""Who may send: MSH-4 must name a registered, active institution by its credit code (统一社会
信用代码), and the message must come from an address on that institution's allow-list.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from rhip.exchange.errors import UNKNOWN_KEY, Location, SenderRefused
from rhip.registry.models import institutions


@dataclass(frozen=True, slots=True)
class Sender:
    institution_id: str
    credit_code: str
    name: str


class SenderCache:
    """Registry rows of known senders, kept ``ttl`` seconds (the ingest hot path would otherwise
    read the registry once per message). Only found institutions are kept, so a newly registered
    one is seen at once; a deregistration or allow-list change takes effect within ``ttl``.
    """

    def __init__(self, ttl: float = 5.0):
        self.ttl = ttl
        self._rows: dict[tuple[str, ...], tuple[float, list[Any]]] = {}
        self._lock = threading.Lock()

    def rows(self, conn: Connection, codes: tuple[str, ...]) -> list[Any]:
        clock = time.monotonic()
        with self._lock:
            hit = self._rows.get(codes)
        if hit is not None and clock - hit[0] < self.ttl:
            return hit[1]
        rows = _lookup(conn, codes)
        if rows:
            with self._lock:
                self._rows[codes] = (clock, rows)
        return rows


def _lookup(conn: Connection, codes: tuple[str, ...]) -> list[Any]:
    return conn.execute(
        select(
            institutions.c.id,
            institutions.c.credit_code,
            institutions.c.name,
            institutions.c.active,
            institutions.c.allow_cidrs,
        ).where(institutions.c.credit_code.in_([c.upper() for c in codes]))
    ).all()


def authorise(
    conn: Connection,
    codes: tuple[str, ...],
    peer: str | None,
    cache: SenderCache | None = None,
) -> Sender:
    """The institution among ``codes`` (MSH-4 HD.2, HD.1); ``peer`` None skips the address check.

    Raises SenderRefused (ACK AR, ERR-3 204 at MSH-4) naming what is wrong. With ``cache``,
    registry rows are reused for its TTL.
    """
    rows = cache.rows(conn, codes) if cache is not None else _lookup(conn, codes)
    where = Location("MSH", 1, 4)
    if not rows:
        raise SenderRefused(
            f"MSH-4 sending facility {'/'.join(codes)!r} is not a registered institution's "
            "unified social credit code",
            location=where,
            hl7_code=UNKNOWN_KEY,
        )
    row = rows[0]
    if not row.active:
        raise SenderRefused(
            f"institution {row.credit_code} is deregistered and may not send", location=where
        )
    if peer is not None and not _peer_allowed(peer, row.allow_cidrs or ""):
        raise SenderRefused(
            f"address {peer} is not on the allow-list of institution {row.credit_code}",
            location=where,
        )
    return Sender(row.id, row.credit_code, row.name)


def peer_allowed(peer: str, allow_cidrs: str) -> bool:
    """Whether ``peer`` lies in one of the comma-separated networks (IPv4-mapped IPv6 too).

    >>> peer_allowed("127.0.0.1", "127.0.0.0/8,::1/128"), peer_allowed("10.1.2.3", "127.0.0.0/8")
    (True, False)
    """
    try:
        address = ipaddress.ip_address(peer.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for cidr in (c.strip() for c in (allow_cidrs or "").split(",")):
        if not cidr:
            continue
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue  # a bad entry allows nothing; the registry validates on entry
        if address.version == network.version and address in network:
            return True
    return False


_peer_allowed = functools.lru_cache(maxsize=4096)(peer_allowed)  # pure: same peer, same answer
