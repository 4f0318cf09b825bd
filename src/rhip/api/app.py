"""The FastAPI application factory. Nothing connects to a database at import time."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from starlette.exceptions import HTTPException as StarletteHTTPException

from rhip import __version__
from rhip.api.auth import install
from rhip.api.fhir.common import FHIRResponse, outcome_response
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import MalformedInput, NotFound, RhipError, operation_outcome
from rhip.kernel.settings import Settings
from rhip.store import make_engine
from rhip.store.migrate import current

log = logging.getLogger("rhip.api")

# Router modules, each exposing ``router``; importing a FHIR one registers its capability.
ROUTERS = (
    "rhip.api.fhir.metadata",
    "rhip.api.fhir.organization",
    "rhip.api.fhir.patient",
    "rhip.api.fhir.reports",
    "rhip.api.fhir.audit_event",
    "rhip.api.routers.auth",
    "rhip.api.routers.audit",
    "rhip.api.routers.registry",
    "rhip.api.routers.viewing",
    "rhip.api.routers.recognition",
    "rhip.exchange.router",
    "rhip.quality.router",
    "rhip.web",
)


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, *, mllp: bool = False
) -> FastAPI:
    """Build the app for ``settings``; the engine is made here unless one is given (tests).

    With ``mllp`` the HL7 v2 listener runs in the same event loop on ``settings.mllp_port``
    (0 disables it), started and stopped with the app.

    Authentication is on (``rhip.api.auth.install``): deny by default, so every route but the
    public ones (``PUBLIC_PATHS``) needs a valid token; pages are sent to the login page.
    """
    settings = settings or Settings()
    app = FastAPI(
        lifespan=_lifespan if mllp and settings.mllp_port else None,
        title="rhip",
        version=__version__,
        description="Regional Health Information Platform (区域全民健康信息平台): FHIR R4 and "
        "platform REST APIs.",
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.effective_database_url)
    app.state.vault = IdentifierVault(settings.secret_key)
    _install_error_handlers(app)
    for name in ROUTERS:  # a misspelt or broken router module fails here, loudly
        app.include_router(importlib.import_module(name).router)
    install(app)

    @app.get("/health", tags=["platform"])
    def health() -> JSONResponse:
        try:
            with app.state.engine.connect() as conn:
                conn.execute(text("select 1"))
            revision = current(app.state.engine)
        except Exception as exc:
            log.warning("health check: database unreachable: %s", exc.__class__.__name__)
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "database": app.state.engine.dialect.name,
                "schema_revision": revision,
            }
        )

    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    from rhip.exchange.mllp import serve_mllp

    settings: Settings = app.state.settings
    server = await serve_mllp(
        app.state.engine, settings.host, settings.mllp_port, vault=app.state.vault,
        processes=settings.mllp_processes, secret_key=settings.secret_key,
    )  # fmt: skip
    app.state.mllp = server
    log.info("MLLP listener on %s:%s", settings.host, settings.mllp_port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
        server.committer.close()  # the scorecard counts still in memory (workers: stopped)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RhipError)
    async def rhip_error(_request: Request, exc: RhipError) -> FHIRResponse:
        return outcome_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> FHIRResponse:
        issues = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err.get("loc", ()))
            issues.append(
                {
                    "severity": "error",
                    "code": "invalid",
                    "diagnostics": f"{path}: {err.get('msg')}",
                    "expression": [path],
                }
            )
        return FHIRResponse(operation_outcome(issues), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> FHIRResponse:
        if exc.status_code == 404:
            err: RhipError = NotFound(f"no such endpoint: {request.method} {request.url.path}")
        else:
            err = MalformedInput(str(exc.detail))
            err.status = exc.status_code
        return outcome_response(err)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> FHIRResponse:
        # never leak internals: the log has the trace, the client a reference-free message
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return FHIRResponse(
            operation_outcome(
                [
                    {
                        "severity": "fatal",
                        "code": "exception",
                        "diagnostics": "internal error; the operator's log has details",
                    }
                ]
            ),
            status_code=500,
        )
