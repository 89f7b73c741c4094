"""``GET /v1/health``, ``GET /v1/models`` and ``GET /metrics``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.deps import AuthDep, ServicesDep
from server.schemas import EncoderInfo, Health, ModelInfo

router = APIRouter(tags=["meta"])


def _version() -> str:
    try:
        return version("worldplan")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


@router.get("/v1/health", response_model=Health)
async def health(services: ServicesDep) -> Health:
    """Liveness, the encoder (id, provenance, hash), the loaded models and the device."""
    encoders: dict[str, EncoderInfo] = {}
    for loaded in services.registry:
        spec = loaded.model.spec
        encoders[spec.encoder_id] = EncoderInfo(
            encoder_id=spec.encoder_id,
            weights_sha256=spec.encoder_sha256,
            provenance=spec.encoder_provenance,
        )
    return Health(
        status="ok",
        version=_version(),
        device=services.settings.device,
        encoders=list(encoders.values()),
        models=sorted(m.name for m in services.registry),
    )


@router.get("/v1/models", response_model=list[ModelInfo], dependencies=[AuthDep])
async def models(services: ServicesDep) -> list[ModelInfo]:
    """The loaded model bundles and what each expects."""
    out = []
    for loaded in services.registry:
        m = loaded.model
        out.append(
            ModelInfo(
                name=loaded.name,
                env_id=m.spec.env_id,
                env_kwargs=dict(m.spec.env_options),
                image_size=m.spec.image_size,
                env_action_dim=m.env_action_dim,
                frameskip=m.frameskip,
                history=m.history,
                proprio_dim=m.predictor.config.proprio_dim,
                encoder_id=m.spec.encoder_id,
                state_labels=list(m.state_labels),
                metrics=loaded.metrics,
            )
        )
    return sorted(out, key=lambda i: i.name)


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
