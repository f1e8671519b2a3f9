"""The canary's pure parts: the InferenceService renderer, the proxy config and its routing files, metric
arithmetic (histogram quantiles, PSI, exposition parsing) and the analysis checks."""

from __future__ import annotations

import functools
import json
import math

import jsonschema
import pytest
import yaml
from prometheus_client import generate_latest

from inference_service.rollout import analysis, isvc, proxy
from inference_service.rollout.revision_metrics import Stats, histogram_quantile, parse, psi
from inference_service.runtime.revision_http import Faults
from platform_core import settings
from platform_core.errors import ConfigError, PlatformError

CRDS = settings.REPO_ROOT.parent / "shared" / "specs" / "crds"
_RENDER = [n for n in settings.REGISTRY if n.startswith(("PLATFORM_SERVE_", "PLATFORM_K8S_"))]


@pytest.fixture
def defaults(monkeypatch):
    for name in [*_RENDER, "PLATFORM_MODEL_NAME", "PLATFORM_BUCKET"]:
        monkeypatch.delenv(name, raising=False)


def test_committed_inferenceservice_is_the_rendered_one(defaults):
    assert isvc.MANIFEST.read_text() == isvc.render_manifest(), "stale: run `task serving:render-k8s`"


@functools.cache
def _isvc_schema():
    # 2 MB of YAML: the C loader, once per session (the pure-Python one takes ~30 s here).
    doc = yaml.load((CRDS / "serving.kserve.io_inferenceservices.yaml").read_text(), Loader=yaml.CSafeLoader)
    schema = next(v for v in doc["spec"]["versions"] if v["name"] == "v1beta1")["schema"]["openAPIV3Schema"]
    # A validator built once: jsonschema.validate() re-checks this huge schema against its meta-schema every call.
    return jsonschema.validators.validator_for(schema)(schema)


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"upstream CRDs not present at {CRDS} (see ../shared/specs/SOURCES.md)")
@pytest.mark.parametrize("percent", [None, 0, 10, 100])
def test_rendered_inferenceservice_validates_against_the_kserve_crd(defaults, percent):
    spec = isvc.render("iris-xgboost", "7", "s3://mlops/serving/iris-xgboost/v7", percent)
    _isvc_schema().validate(spec)
    predictor = spec["spec"]["predictor"]
    assert predictor.get("canaryTrafficPercent") == percent
    assert predictor["model"]["protocolVersion"] == "v2"
    assert predictor["model"]["storageUri"] == "s3://mlops/serving/iris-xgboost/v7"
    assert predictor["model"]["modelFormat"] == {"name": "xgboost"}
    assert spec["metadata"]["annotations"][isvc.TAG_ROUTING] == "true"
    assert isvc.model_version(spec) == "7"
    with pytest.raises(jsonschema.ValidationError):  # the schema really constrains
        _isvc_schema().validate({**spec, "spec": {"predictor": {**predictor, "minReplicas": "one"}}})


def test_servingruntime_validates_against_the_kserve_crd():
    if not CRDS.is_dir():
        pytest.skip(f"upstream CRDs not present at {CRDS}")
    doc = yaml.load((CRDS / "serving.kserve.io_servingruntimes.yaml").read_text(), Loader=yaml.CSafeLoader)
    schema = next(v for v in doc["spec"]["versions"] if v.get("storage"))["schema"]["openAPIV3Schema"]
    runtime = yaml.safe_load((isvc.MANIFEST.parent / "servingruntime.yaml").read_text())
    jsonschema.validate(runtime, schema)
    assert runtime["metadata"]["name"] == settings.SERVE_RUNTIME.get()
    assert runtime["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] is True


def test_bad_canary_percent_is_refused(defaults):
    with pytest.raises(ConfigError, match="0..100"):
        isvc.render("m", "1", "s3://b/m/v1", 101)


def test_proxy_config_is_one_shape_of_slots_whatever_is_served_and_has_no_tcp_admin(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    cfg = proxy.config()
    assert cfg["admin"]["listen"] == f"unix/{tmp_path}/run/caddy-admin.sock|0600"
    assert cfg["admin"]["config"]["persist"] is False and cfg["storage"]["root"].startswith(str(tmp_path))
    rest = cfg["apps"]["http"]["servers"]["rest"]
    assert rest["listen"] == [f"127.0.0.1:{settings.SERVE_HTTP_PORT.get()}"]
    routes = tmp_path / "serving" / "routes"
    internal, by_host, index, by_path, unavailable, default = rest["routes"]
    assert internal["match"] == [{"path": list(proxy.INTERNAL_PATHS)}] and "/openapi.json" in proxy.INTERNAL_PATHS
    # KServe's host form and its tag hosts, per slot: latest- (canary only), prev- (stable only), <name> (split).
    assert by_host["match"] == [{"host": ["*.localhost"]}]
    inner = by_host["handle"][0]["routes"]
    assert len(inner) == 3 * proxy.SLOTS
    assert [r["match"][0]["file"]["root"] for r in inner[:3]] == [
        f"{routes}/slot-0/{d}" for d in ("latest", "prev", "hosts")
    ]
    assert inner[0]["match"][0]["file"]["try_files"] == ["{http.request.host}"]
    assert [u["dial"] for u in inner[0]["handle"][0]["upstreams"]] == [f"{{file.{routes}/slot-0/rest-canary.addr}}"]
    # REST by path: /v2/models/<name>/..., an unknown name is a 404 with an error; GET /v2/models is the index.
    assert index["match"] == [{"method": ["GET"], "path": ["/v2/models", "/v2/models/"]}]
    assert index["handle"][0]["body"] == f"{{file.{routes}/index.json}}"
    paths = by_path["handle"][0]["routes"]
    segment = "{http.request.uri.path.2}"  # the <name> of /v2/models/<name>/...
    assert paths[0]["match"][0]["file"] == {"root": f"{routes}/slot-0/models", "try_files": [segment]}
    assert paths[-1]["handle"][0]["status_code"] == 404 and "error" in paths[-1]["handle"][0]["body"]
    split = paths[0]["handle"][0]["routes"]
    matcher = split[0]["match"][0]["expression"]
    assert f'ph(req, "file.{routes}/slot-0/canary.threshold") != null &&' in matcher  # a missing file: all stable
    assert 'ph(req, "http.request.uuid")' in matcher and proxy.ROUTE_KEY in matcher
    dials = [[u["dial"] for u in r["handle"][0]["upstreams"]] for r in split]
    canary, stable = f"{{file.{routes}/slot-0/rest-canary.addr}}", f"{{file.{routes}/slot-0/rest-stable.addr}}"
    assert dials == [[canary, stable], [stable, canary]]
    assert split[0]["handle"][0]["load_balancing"]["selection_policy"] == {"policy": "first"}
    # A request naming no model: the default model's slot (a symlink), 503 with an error while there is none.
    assert unavailable["handle"][0]["status_code"] == 503 and "error" in unavailable["handle"][0]["body"]
    assert unavailable["match"][0]["not"][0]["file"]["try_files"] == ["default/rest-stable.addr"]
    assert default["handle"][0]["routes"][-1]["handle"][0]["upstreams"][0]["dial"] == (
        f"{{file.{routes}/default/rest-stable.addr}}")  # fmt: skip
    grpc = cfg["apps"]["http"]["servers"]["grpc"]
    assert "h2c" in grpc["protocols"] and len(grpc["routes"]) == 3  # by host (:authority), 503, the default
    last = grpc["routes"][-1]["handle"][0]["routes"][-1]["handle"][0]
    assert last["transport"]["versions"] == ["h2c"]
    assert last["upstreams"][0]["dial"] == f"{{file.{routes}/default/grpc-stable.addr}}"


def test_serving_a_model_or_changing_a_weight_is_files_the_proxy_reads_not_a_reload(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    proxy.reset()
    stable, new = proxy.Upstream("m-00001", 30001, 30002), proxy.Upstream("m-00002", 30003, 30004)
    proxy.publish("m", new, stable, 10)
    slot = tmp_path / "serving" / "routes" / "slot-0"
    read = {p.name: p.read_text() for p in slot.iterdir() if p.is_file()}
    assert read == {"rest-canary.addr": "127.0.0.1:30003", "grpc-canary.addr": "127.0.0.1:30004",
                    "rest-stable.addr": "127.0.0.1:30001", "grpc-stable.addr": "127.0.0.1:30002",
                    "canary.threshold": "19999999", "model": "m"}  # fmt: skip
    assert {str(p.relative_to(slot)) for p in slot.glob("*/*")} == {
        "models/m", "hosts/m.localhost", "latest/latest-m.localhost", "prev/prev-m.localhost"}  # fmt: skip
    other = proxy.Upstream("w-00001", 30005, 30006)
    proxy.publish("w", other, other, 0)  # another model: the next slot, the first one untouched
    assert proxy.served() == {"m": slot, "w": slot.with_name("slot-1")}
    assert (slot / "rest-canary.addr").read_text() == "127.0.0.1:30003"
    proxy._refresh(preferred="w")
    assert proxy.default_model() == "w"
    assert json.loads((slot.parent / "index.json").read_text()) == {"models": ["m", "w"]}
    proxy._refresh(preferred="not-served")  # the default stays what it was
    assert proxy.default_model() == "w"
    proxy.publish("m", new, stable, 50)
    assert (slot / "canary.threshold").read_text() == "80000000" and proxy.served()["m"] == slot


def test_the_split_is_the_percentage_of_uuids_and_exact_for_spread_route_keys():
    """p% of random UUIDs sort below the threshold; 0 and 100 are never / always. Route keys spread evenly over
    the 32-bit space (what the integration split test sends) fall below it exactly p% of the time."""
    import uuid

    draws = [str(uuid.uuid4()) for _ in range(20000)]
    for percent in (0, 10, 50, 90, 100):
        share = sum(d < proxy.threshold(percent) for d in draws) / len(draws)
        assert abs(share - percent / 100) < 0.02, (percent, share)
        keys = [f"{i * 2**32 // 200:08x}" for i in range(200)]
        assert sum(k < proxy.threshold(percent) for k in keys) == 2 * percent


def test_the_slots_run_out_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    proxy.reset()
    for i in range(proxy.SLOTS):
        up = proxy.Upstream(f"m{i}-00001", 31000 + i, 32000 + i)
        proxy.publish(f"m{i}", up, up, 0)
    with pytest.raises(PlatformError, match=f"{proxy.SLOTS} models are served"):
        proxy.publish("one-more", up, up, 0)


def test_each_model_has_its_own_spec_and_state_and_the_old_one_model_layout_moves_in(tmp_path, monkeypatch):
    from inference_service.rollout import revisions

    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    serving = tmp_path / "serving"
    serving.mkdir()
    old = {"model": "old-xgboost", "created": 3, "revisions": [], "traffic": {}}
    (serving / "revisions.json").write_text(json.dumps(old))
    (serving / "inferenceservice.yaml").write_text("kind: InferenceService\n")
    assert revisions.models() == ["old-xgboost"] and not (serving / "revisions.json").exists()
    assert revisions.load("old-xgboost").created == 3
    assert isvc.read_local("old-xgboost") == {"kind": "InferenceService"}
    assert revisions.load("new-xgboost").created == 0  # each model numbers its revisions from 00001
    assert isvc.spec_file("a") == serving / "a" / "inferenceservice.yaml" != isvc.spec_file("b")


def test_a_new_model_is_applied_whole_and_a_served_one_patched(defaults):
    from inference_service.rollout.change import Change

    spec = isvc.render("second", "1", "s3://b/second/v1")
    assert Change(spec, "create", spec, 100, manifest="/s/second.yaml").kubectl() == "kubectl apply -f /s/second.yaml"
    assert Change(spec, "merge", {"a": 1}, 100).kubectl() == (
        f"kubectl patch isvc second -n {settings.K8S_NAMESPACE.get()} --type=merge -p '{{\"a\": 1}}'")  # fmt: skip


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = {0.01: 50.0, 0.1: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.01 + 0.09 * 0.5)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.1 + 0.9 * 0.5)
    assert histogram_quantile(0.5, {0.01: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.99, {0.01: 1.0, math.inf: 10.0}) == 0.01  # beyond the last bound


def test_psi_is_zero_for_the_same_mix_and_large_for_a_shift():
    assert psi({"a": 50, "b": 50}, {"a": 500, "b": 500}) == pytest.approx(0.0, abs=1e-3)
    assert psi({"a": 50, "b": 50}, {"a": 95, "b": 5}) > 0.5
    assert psi({"a": 50}, {"b": 50}) > 1  # a class the stable never predicted
    assert psi({}, {"a": 1}) is None


def test_revision_series_parse_from_a_real_exposition():
    from inference_service.runtime import metrics

    rev = "unit-predictor-00042"
    metrics.REVISION_REQUESTS.labels(rev, "2xx").inc(8)
    metrics.REVISION_REQUESTS.labels(rev, "5xx").inc(2)
    for seconds in (0.002, 0.002, 0.2):
        metrics.REVISION_SECONDS.labels(rev).observe(seconds)
    metrics.PREDICTED.labels("m", "3", rev, "setosa").inc(5)
    stats = parse(generate_latest().decode(), rev)
    assert stats.requests == 10 and stats.success_rate == pytest.approx(0.8)
    assert stats.predicted == {"setosa": 5.0}
    assert 0.1 < stats.quantile(0.95) <= 0.25
    assert parse(generate_latest().decode(), "another-revision").requests == 0
    later = Stats({"2xx": 18, "5xx": 2}, dict(stats.buckets), {"setosa": 9})
    assert later.minus(stats).summary()["requests"] == 10 and later.minus(stats).success_rate == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", Faults()), ("error_rate=0.3", Faults(0.3, 0)), ("delay_ms=200, error_rate=1", Faults(1.0, 200.0))],
)
def test_fault_specs_parse(text, expected):
    assert Faults.parse(text) == expected


@pytest.mark.parametrize("text", ["error_rate=2", "delay_ms=-1", "latency=3", "error_rate=lots"])
def test_bad_fault_specs_are_refused_naming_the_problem(text):
    with pytest.raises(ConfigError, match="PLATFORM_SERVE_FAULTS"):
        Faults.parse(text)


def _stats(ok: int, errors: int, slow: bool = False, mix=(30, 30, 30)) -> Stats:
    bound = 0.5 if slow else 0.005
    total = ok + errors
    return Stats({"2xx": ok, "5xx": errors}, {bound: float(total), math.inf: float(total)},
                 dict(zip(("a", "b", "c"), map(float, mix), strict=True)))  # fmt: skip


def test_analysis_checks_pass_a_good_canary_and_name_what_fails_in_a_bad_one(monkeypatch):
    policy = analysis.Policy([10], 1.0, 2, 30, 0.99, 2.0, 25.0, 0.2)
    good = analysis.checks(policy, _stats(100, 0), _stats(900, 0), None)
    assert all(c["passed"] for c in good) and [c["name"] for c in good] == [
        "success rate", "p95 latency (ms)", "predicted-class PSI"]  # fmt: skip
    failed = {c["name"] for c in analysis.checks(policy, _stats(70, 30), _stats(900, 0), None) if not c["passed"]}
    assert failed == {"success rate"}
    failed = {c["name"] for c in analysis.checks(policy, _stats(100, 0, slow=True), _stats(900, 0), None)
              if not c["passed"]}  # fmt: skip
    assert failed == {"p95 latency (ms)"}
    shifted = _stats(100, 0, mix=(90, 5, 5))
    failed = {c["name"] for c in analysis.checks(policy, shifted, _stats(900, 0), None) if not c["passed"]}
    assert failed == {"predicted-class PSI"}
    dead = analysis.checks(policy, None, _stats(900, 0), "ConnectError: refused")
    assert [c["passed"] for c in dead] == [False] and "refused" in dead[0]["value"]


def test_policy_reads_steps_up_to_the_max_weight(monkeypatch):
    monkeypatch.setenv("PLATFORM_CANARY_STEPS", "10,25,50,80")
    monkeypatch.setenv("PLATFORM_CANARY_MAX_WEIGHT", "50")
    assert analysis.Policy.from_settings().steps == [10, 25, 50]
    monkeypatch.setenv("PLATFORM_CANARY_STEPS", "50,10")
    with pytest.raises(Exception, match="rising weights"):
        analysis.Policy.from_settings()


def test_faults_are_part_of_the_revision_template(defaults, monkeypatch):
    plain = isvc.render("m", "1", "s3://b/m/v1")
    assert isvc.faults(plain) == "" and "env" not in plain["spec"]["predictor"]["model"]
    monkeypatch.setenv("PLATFORM_SERVE_FAULTS", "error_rate=0.3")
    rehearsal = isvc.render("m", "1", "s3://b/m/v1", 10)
    assert isvc.faults(rehearsal) == "error_rate=0.3"
    assert rehearsal["spec"]["predictor"]["model"]["env"] == [
        {"name": "PLATFORM_SERVE_FAULTS", "value": "error_rate=0.3"}
    ]


def test_prometheus_source_reads_a_revisions_window_from_the_query_api():
    """Cluster mode's metrics: PromQL over the window, answers in the Prometheus HTTP API's vector shape."""
    import json as _json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    from inference_service.rollout.revision_metrics import PrometheusSource

    queries: list[str] = []

    def vector(rows):
        return {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": metric, "value": [1.0, str(value)]} for metric, value in rows]}}  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            query = parse_qs(urlparse(self.path).query)["query"][0]
            queries.append(query)
            if "requests_total" in query:
                body = vector([({"code": "2xx"}, 95), ({"code": "5xx"}, 5)])
            elif "seconds_bucket" in query:
                body = vector([({"le": "0.01"}, 90), ({"le": "0.1"}, 100), ({"le": "+Inf"}, 100)])
            else:
                body = vector([({"label": "a"}, 60), ({"label": "b"}, 40)])
            data = _json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        stats = PrometheusSource(url, {"m-00002": ""}, window_s=120).measure("m-00002")
    finally:
        server.shutdown()
        server.server_close()
    assert stats.requests == 100 and stats.success_rate == pytest.approx(0.95)
    assert stats.predicted == {"a": 60.0, "b": 40.0} and 0.01 < stats.quantile(0.95) <= 0.1
    assert all('revision="m-00002"' in q and "[12" in q for q in queries) and len(queries) == 3
    with pytest.raises(Exception, match="did not answer"):
        PrometheusSource("http://127.0.0.1:9", {"m": ""}).measure("m")  # nothing listens on port 9
