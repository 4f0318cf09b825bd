"""HTTP interface: the FastAPI app factory, FHIR facade and platform routers."""

from rhip.api.app import create_app

__all__ = ["create_app"]
