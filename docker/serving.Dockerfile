# The serving runtime image (the platform-xgboost ServingRuntime): the project's core dependencies only (kserve,
# xgboost; no Spark, Ray, MLflow or JRE), from uv.lock (--frozen: the build fails if the lock is stale).
# Build from the repository root:  docker build -f docker/serving.Dockerfile -t ghcr.io/kfserve-bundle/serving:0.1.0 .
FROM python:3.11.11-slim-bookworm

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    PLATFORM_PROFILE=cluster \
    PLATFORM_STATE_DIR=/tmp/platform

WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.8
# README.md: pyproject.toml names it (readme), and hatchling fails to build the project without it.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
# The whole source tree is small; only inference_service.runtime and platform_core are imported.
COPY platform_core/ platform_core/
COPY platform_cli/ platform_cli/
COPY orchestration/ orchestration/
COPY data_platform/ data_platform/
COPY ml_platform/ ml_platform/
COPY inference_service/ inference_service/
RUN uv sync --frozen --no-dev

USER 1000:1000
ENTRYPOINT ["python", "-m", "inference_service.runtime.server"]
