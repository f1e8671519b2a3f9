"""What each revision did over a window, from its Prometheus series: requests by status class, latency
quantiles, predicted-class counts. Locally read from each revision's own `/metrics` (before/after snapshots);
on a cluster from a Prometheus query over the window.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from platform_core import settings
from platform_core.errors import PlatformError


@dataclass
class Stats:
    codes: dict[str, float] = field(default_factory=dict)  # 2xx / 4xx / 5xx
    buckets: dict[float, float] = field(default_factory=dict)  # cumulative: upper bound -> count
    predicted: dict[str, float] = field(default_factory=dict)  # class label -> rows

    @property
    def requests(self) -> int:
        return int(sum(self.codes.values()))

    @property
    def success_rate(self) -> float | None:
        """Share of requests the revision did not fail (5xx); a client's 4xx is not the revision's fault."""
        return 1 - self.codes.get("5xx", 0) / self.requests if self.requests else None

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets)

    def minus(self, before: Stats) -> Stats:
        def sub(a: dict, b: dict) -> dict:
            return {k: max(v - b.get(k, 0.0), 0.0) for k, v in a.items()}

        return Stats(sub(self.codes, before.codes), sub(self.buckets, before.buckets),
                     sub(self.predicted, before.predicted))  # fmt: skip

    def summary(self) -> dict[str, Any]:
        p50, p95 = self.quantile(0.5), self.quantile(0.95)
        return {
            "requests": self.requests,
            "errors_5xx": int(self.codes.get("5xx", 0)),
            "success_rate": None if self.success_rate is None else round(self.success_rate, 4),
            "p50_ms": None if p50 is None else round(p50 * 1000, 2),
            "p95_ms": None if p95 is None else round(p95 * 1000, 2),
            "predicted": {k: int(v) for k, v in sorted(self.predicted.items())},
        }


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket the quantile falls in."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank, lower, below = q * ordered[-1][1], 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the last finite bucket: its bound is the best estimate
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = upper, count
    return lower


def psi(expected: dict[str, float], actual: dict[str, float]) -> float | None:
    """Population stability index of two categorical distributions (0.5-smoothed counts)."""
    labels = sorted(set(expected) | set(actual))
    n_e, n_a = sum(expected.values()), sum(actual.values())
    if not labels or n_e <= 0 or n_a <= 0:
        return None
    total = 0.0
    for label in labels:
        e = (expected.get(label, 0.0) + 0.5) / (n_e + 0.5 * len(labels))
        a = (actual.get(label, 0.0) + 0.5) / (n_a + 0.5 * len(labels))
        total += (a - e) * math.log(a / e)
    return total


def parse(text: str, revision: str) -> Stats:
    """The revision's series out of a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    stats = Stats()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if s.name == "platform_revision_requests_total" and labels.get("revision") == revision:
                stats.codes[labels["code"]] = stats.codes.get(labels["code"], 0.0) + s.value
            elif s.name == "platform_revision_request_seconds_bucket" and labels.get("revision") == revision:
                stats.buckets[float(labels["le"])] = s.value
            elif s.name == "platform_inference_predicted_total" and labels.get("revision") == revision:
                stats.predicted[labels["label"]] = stats.predicted.get(labels["label"], 0.0) + s.value
    return stats


class LocalSource:
    """Snapshots of each revision's own /metrics; a window's stats are after minus before."""

    def __init__(self, revisions: dict[str, str]):  # name -> url
        self.revisions = revisions
        self._before: dict[str, Stats] = {}

    def scrape(self, name: str) -> Stats:
        answer = httpx.get(f"{self.revisions[name]}/metrics", timeout=5)
        answer.raise_for_status()
        return parse(answer.text, name)

    def start(self) -> None:
        self._before = {}
        for name in self.revisions:
            try:
                self._before[name] = self.scrape(name)
            except httpx.HTTPError:
                self._before[name] = Stats()

    def measure(self, name: str) -> Stats:
        """Raises httpx.HTTPError when the revision does not answer."""
        return self.scrape(name).minus(self._before.get(name, Stats()))


class PrometheusSource:
    """The same series from a Prometheus server (cluster mode): increases over the window since `start`."""

    def __init__(self, url: str, revisions: dict[str, str], window_s: float = 0.0):
        self.url, self.revisions = url.rstrip("/"), revisions
        self._started = time.time() - window_s

    def start(self) -> None:
        self._started = time.time()

    def _query(self, promql: str) -> list[dict[str, Any]]:
        try:
            answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
            answer.raise_for_status()
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PlatformError(
                f"Prometheus at {self.url} did not answer: {exc}", "set PLATFORM_PROMETHEUS_URL"
            ) from exc
        if body.get("status") != "success":
            raise PlatformError(f"Prometheus refused the query: {body.get('error')}", "check PLATFORM_PROMETHEUS_URL")
        return body["data"]["result"]

    def measure(self, name: str) -> Stats:
        window = f"{max(int(time.time() - self._started), 1)}s"
        stats = Stats()
        for row in self._query(
            f'sum by (code) (increase(platform_revision_requests_total{{revision="{name}"}}[{window}]))'
        ):
            stats.codes[row["metric"]["code"]] = float(row["value"][1])
        query = f'sum by (le) (increase(platform_revision_request_seconds_bucket{{revision="{name}"}}[{window}]))'
        for row in self._query(query):
            stats.buckets[float(row["metric"]["le"])] = float(row["value"][1])
        query = f'sum by (label) (increase(platform_inference_predicted_total{{revision="{name}"}}[{window}]))'
        for row in self._query(query):
            stats.predicted[row["metric"]["label"]] = float(row["value"][1])
        return stats


def revision_stats(revision: dict[str, Any]) -> Stats | None:
    """Everything a running revision answered so far (local: since it started; cluster: the last 5 minutes)."""
    revisions = {revision["name"]: revision.get("url", "")}
    if settings.profile() == "cluster":
        return PrometheusSource(settings.PROMETHEUS_URL.get(), revisions, window_s=300).measure(revision["name"])
    try:
        return LocalSource(revisions).scrape(revision["name"])
    except httpx.HTTPError:
        return None
