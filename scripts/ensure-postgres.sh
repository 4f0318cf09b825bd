#!/usr/bin/env bash
# Make sure the local PostgreSQL (127.0.0.1:5432, trust auth) answers; start it if it is down.
# On CI (CI=true) a PostgreSQL that cannot be reached fails the run; elsewhere the PostgreSQL
# tests skip with the reason printed.
set -u
host=127.0.0.1 port=5432
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
if ready; then echo "postgres: up on $host:$port"; exit 0; fi
if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
  for v in $(ls /etc/postgresql); do
    echo "postgres: starting cluster $v/main"
    pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
  for _ in $(seq 1 30); do ready && { echo "postgres: up on $host:$port"; exit 0; }; sleep 1; done
fi
if [[ "${CI:-}" == "true" || "${RHIP_REQUIRE_POSTGRES:-}" == "1" ]]; then
  echo "postgres: cannot reach $host:$port and could not start it; CI requires it" >&2
  exit 1
fi
echo "postgres: not reachable on $host:$port; PostgreSQL tests will skip with this reason" >&2
exit 0
