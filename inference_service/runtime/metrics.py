"""Prometheus metrics of the served model, on KServe's own `/metrics` (its default registry).

Per model and registry version: requests by outcome, rejections by reason, rows predicted and prediction
latency. The canary analysis compares revisions on exactly these series.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

# The revision this process serves: Knative sets K_REVISION in every revision's container; the local revision
# controller sets it the same way. Empty for a server that is no revision.
REVISION = os.environ.get("K_REVISION", "")

LABELS = ("model", "version")
REQUESTS = Counter("platform_inference_requests", "Inference requests by outcome (ok / rejected)", [*LABELS, "outcome"])
REJECTIONS = Counter("platform_inference_rejections", "Rejected inference requests by reason", [*LABELS, "reason"])
ROWS = Counter("platform_inference_rows", "Rows predicted", LABELS)
PREDICTED = Counter(
    "platform_inference_predicted",
    "Rows predicted per class (the canary's distribution check)",
    [*LABELS, "revision", "label"],
)
# Whole-request series of a revision (set by the revision middleware, faults included): what canary analysis reads.
REVISION_REQUESTS = Counter(
    "platform_revision_requests", "Inference requests per revision by status class", ["revision", "code"]
)
REVISION_SECONDS = Histogram(
    "platform_revision_request_seconds", "Inference request time per revision, as the server saw it", ["revision"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)  # fmt: skip
LATENCY = Histogram(
    "platform_inference_seconds", "Time to validate, predict and build one response", LABELS,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)  # fmt: skip


def exposition(accept: str) -> tuple[bytes, str] | None:
    """Every worker's series summed (prometheus_client's multiprocess mode, see `inference_service.runtime.workers`);
    None when this process serves alone and KServe's own `/metrics` has it all."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    from prometheus_client import CollectorRegistry
    from prometheus_client import exposition as encoders
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    encoder, content_type = encoders.choose_encoder(accept)
    return encoder(registry), content_type


def rejected(model: str, version: str, reason: str) -> None:
    REQUESTS.labels(model, version, "rejected").inc()
    REJECTIONS.labels(model, version, reason).inc()


class Served:
    """The series of one served model version, bound once at load: answering touches no label lookups."""

    def __init__(self, model: str, version: str):
        self.model, self.version = model, version
        self._ok = REQUESTS.labels(model, version, "ok")
        self._rows = ROWS.labels(model, version)
        self._latency = LATENCY.labels(model, version)
        self._predicted: list = []

    def classes(self, names: list[str]) -> None:
        self._predicted = [PREDICTED.labels(self.model, self.version, REVISION, name) for name in names]

    def answered(self, rows: int, seconds: float, counts=None) -> None:
        self._ok.inc()
        self._rows.inc(rows)
        self._latency.observe(seconds)
        if counts is not None:
            for series, n in zip(self._predicted, counts, strict=False):
                if n:
                    series.inc(int(n))

    def rejected(self, reason: str) -> None:
        rejected(self.model, self.version, reason)
