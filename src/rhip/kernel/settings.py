"""Settings from the environment (``RHIP_`` prefix) or a ``.env`` file, validated by pydantic."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-insecure-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RHIP_", env_file=".env", extra="ignore")

    env: str = "dev"  # dev | test | prod
    database_url: str = ""  # empty: SQLite file under var_dir
    var_dir: Path = Path("var")
    # keys for personal data: HMAC key for matching hashes, and the encryption key's seed
    secret_key: str = DEV_SECRET
    host: str = "127.0.0.1"
    port: int = 8000
    mllp_port: int = 2575
    # MLLP worker processes behind one acceptor (PostgreSQL; 1: in the API's process)
    mllp_processes: int = 1
    log_level: str = "info"

    @model_validator(mode="after")
    def _refuse_placeholder(self) -> Settings:
        if self.env not in ("dev", "test") and self.secret_key == DEV_SECRET:
            raise ValueError("RHIP_SECRET_KEY must be set to a real secret outside dev mode")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'rhip.db').as_posix()}"
