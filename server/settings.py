"""Service settings, read from environment variables (``WORLDPLAN_*``) or a ``.env`` file.

Settings are built once per process behind :func:`server.deps.get_settings`;
tests override that dependency instead of mutating a global.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of the planning service."""

    model_config = SettingsConfigDict(
        env_prefix="WORLDPLAN_", env_file=".env", env_file_encoding="utf-8", frozen=True
    )

    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Accepted values of the X-API-Key header (JSON list in the env var). "
        "Empty means no endpoint but health and metrics can be used.",
    )
    models_dir: Path = Field(
        default=Path("models"), description="Folder of model bundles loaded at start-up."
    )
    device: str = Field(default="cpu", description="torch device the models run on.")
    max_request_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Largest accepted request body."
    )
    max_image_side: int = Field(
        default=1024, gt=0, description="Largest accepted image width or height (px)."
    )
    plan_store_size: int = Field(
        default=256, gt=0, description="Plans kept for GET /v1/plans/{id}; oldest evicted first."
    )
    batch_window_ms: float = Field(
        default=5.0, ge=0, description="How long the batcher waits to gather concurrent requests."
    )
    max_batch: int = Field(default=16, gt=0, description="Most requests planned in one call.")
    max_budget_ms: float = Field(
        default=60_000.0, gt=0, description="Largest planning wall-time budget a request may ask."
    )
    max_budget_iterations: int = Field(
        default=500, gt=0, description="Largest planner iteration budget a request may ask."
    )
    torch_threads: int = Field(default=0, ge=0, description="torch threads; 0 leaves the default.")

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(not k.get_secret_value().strip() for k in keys):
            raise ValueError("api_keys must not contain empty keys")
        return keys
