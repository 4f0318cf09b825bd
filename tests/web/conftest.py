"""Web test fixtures: a synthesized small city (300 residents) with reports, the real app served
by uvicorn on a free loopback port in a thread, and Debian's Chromium driven by Playwright.

Chromium is launched from ``/usr/bin/chromium`` (``scripts/ensure-browser.sh`` installs it with
``fonts-noto-cjk``); nothing is downloaded. Screenshots go to ``test-output/screenshots/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine, func, select

from rhip.api.app import create_app
from rhip.exchange.models import reports
from rhip.identity.models import registrations
from rhip.kernel.settings import Settings
from rhip.security.schemas import Role, UserCreate
from rhip.security.service import create_user
from rhip.store import make_engine
from rhip.synth.service import synthesize
from web.seed import seed_reports

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
PASSWORD = "web-test-password"


@dataclass
class City:
    engine: Engine
    settings: Settings
    patient: str  # golden patient with most reports: the patient account
    other: str  # another patient with reports
    doctor_institution: str  # where ``patient`` is registered


class AccessLog(logging.Handler):
    """Collects the web access records (rhip.audit.web) of the in-process server."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(record.access)


@pytest.fixture(scope="session")
def city(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    folder = tmp_path_factory.mktemp("web")
    shutil.copyfile(sqlite_template, folder / "rhip.db")
    engine = make_engine(f"sqlite:///{folder / 'rhip.db'}")
    settings = Settings(env="test", var_dir=folder)
    synthesize(engine, settings, residents=300, seed=42)
    seed_reports(engine, per_patient=6.0, days=30, seed=1)
    with engine.connect() as conn:
        top = conn.execute(
            select(reports.c.patient_id)
            .group_by(reports.c.patient_id)
            .order_by(func.count().desc(), reports.c.patient_id)
            .limit(2)
        ).scalars()
        patient, other = list(top)
        inst = conn.execute(
            select(registrations.c.institution_id).where(registrations.c.person_id == patient)
        ).scalar()
    _accounts(engine, patient, inst)
    yield City(engine, settings, patient, other, inst)
    engine.dispose()


def _accounts(engine: Engine, patient: str, institution: str) -> None:
    for name, role, inst, pid in [
        ("op", Role.OPERATOR, None, None),
        ("dr", Role.DOCTOR, institution, None),
        ("pt", Role.PATIENT, None, patient),
        ("ig", Role.INTEGRATOR, institution, None),
    ]:
        create_user(
            engine,
            UserCreate(username=name, password=PASSWORD, role=role, institution_id=inst,
                       patient_id=pid, display_name=f"测试{name}"),
        )  # fmt: skip


@pytest.fixture(scope="session")
def access_log() -> Iterator[AccessLog]:
    handler = AccessLog()
    logger = logging.getLogger("rhip.audit.web")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def server(city: City, access_log: AccessLog) -> Iterator[str]:
    with serve(create_app(city.settings, city.engine)) as base:
        yield base


@pytest.fixture(scope="session")
def browser():
    import playwright.sync_api as playwright  # a missing browser stack fails, never skips

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-browser.sh (make test does)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def login(browser, server):
    """``login(username)`` → a fresh page signed in as that account (laptop-sized window)."""
    contexts = []

    def sign_in(username: str, viewport=(1440, 900)):
        ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                  locale="zh-CN")  # fmt: skip
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(f"{server}/")
        assert "/web/login" in page.url
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    yield sign_in
    for ctx in contexts:
        ctx.close()


def shot(page, name: str, *also: Path) -> Path:
    """A full-page screenshot under ``test-output/screenshots/``; copied to ``also`` (the README's
    pictures in docs/img) only with ``RHIP_UPDATE_DOC_IMAGES=1``, so a test run leaves the
    tracked tree as it was."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("RHIP_UPDATE_DOC_IMAGES") == "1":
        for copy in also:
            shutil.copyfile(path, copy)
    return path


CANVAS_PAINTED = """el => {
  const c = el.querySelector('canvas');
  if (!c) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
  return n;
}"""
