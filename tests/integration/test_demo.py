"""End to end: the demo on a small search, then checks of everything it left behind.

Runs the same `demo` command a user runs (via ./setup-env demo), against the session's private stack.
"""

import re

import numpy as np
import pytest

from data_platform.lake import read_manifest
from inference_service.runtime.client import (
    DEFAULT_INPUT,
    features_of,
    infer_grpc,
    infer_rest,
    load_request,
    predicted_classes,
)
from platform_core import settings, storage
from platform_core.errors import PlatformError

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_every_trial_is_an_ended_mlflow_run_and_finished_ones_have_their_model_on_s3(demo):
    experiment = demo.get_experiment_by_name(settings.EXPERIMENT.get())
    runs = demo.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("stage") == "tune"]
    assert len(parents) == 2  # the first model's search, then the canary's longer one
    assert {p.info.status for p in parents} == {"FINISHED"}
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in {p.info.run_id for p in parents}]
    assert len(trials) == 2 * settings.TUNE_SAMPLES.get() == 4
    assert {r.info.status for r in trials} <= {"FINISHED", "KILLED"}  # KILLED: stopped early by ASHA
    finished = [r for r in trials if r.info.status == "FINISHED"]
    for trial in trials:
        assert {"max_depth", "eta", "nthread"} <= trial.data.params.keys()
    for trial in finished:
        assert {"valid_mlogloss", "valid_accuracy"} <= trial.data.metrics.keys()
    keys = storage.list_keys(f"s3://{settings.BUCKET.get()}/mlflow/{experiment.experiment_id}/models/")
    model_files = [k for k in keys if k.endswith("/artifacts/model.ubj")]
    assert len(model_files) == len(finished) >= 1


def test_champion_is_the_best_trial_of_the_canarys_search_and_the_first_model_is_previous(demo):
    experiment = demo.get_experiment_by_name(settings.EXPERIMENT.get())
    champion = demo.get_model_version_by_alias(settings.MODEL_NAME.get(), "champion")
    champion_run = demo.get_run(champion.tags["source_run_id"])
    parent = champion_run.data.tags["mlflow.parentRunId"]
    trials = [
        r for r in demo.search_runs([experiment.experiment_id]) if r.data.tags.get("mlflow.parentRunId") == parent
    ]
    best_loss = min(r.data.metrics["valid_mlogloss"] for r in trials if r.info.status == "FINISHED")
    assert champion_run.data.metrics["valid_mlogloss"] == best_loss  # compared by value: ties are possible
    previous = demo.get_model_version_by_alias(settings.MODEL_NAME.get(), "previous")
    assert int(previous.version) < int(champion.version)  # the demo's first model, replaced through the canary
    assert demo.get_run(previous.tags["source_run_id"]).data.tags["mlflow.parentRunId"] != parent


def test_serving_bundle_has_exactly_one_model_file_and_its_metadata(demo):
    champion = demo.get_model_version_by_alias(settings.MODEL_NAME.get(), "champion")
    assert champion.tags["gate"] == "passed"  # the first model reached production through the gate's floors
    prefix = f"serving/{settings.MODEL_NAME.get()}/v{champion.version}/"
    keys = storage.list_keys(f"s3://{settings.BUCKET.get()}/{prefix}")
    assert sorted(k.removeprefix(prefix) for k in keys) == ["metadata/bundle.json", "model.ubj"]


def test_served_champion_answers_v2_over_rest_and_grpc(demo):
    name = settings.MODEL_NAME.get()
    version = demo.get_model_version_by_alias(name, "champion").version
    request = load_request(DEFAULT_INPUT)
    rest = infer_rest(settings.serve_url(), name, request)
    assert rest["model_name"] == name and rest["model_version"] == str(version)
    assert rest["id"] == request["id"] and rest["parameters"]["service_version"]
    classes = read_manifest(settings.lake_dir(), settings.DATASET.get())["classes"]  # the contract's labels
    assert [c for c, _ in predicted_classes(rest)] == classes  # input.json holds one row of each class, in order
    grpc = infer_grpc(f"127.0.0.1:{settings.SERVE_GRPC_PORT.get()}", name, features_of(request))
    assert [o["name"] for o in grpc["outputs"]] == ["probabilities", "label"]
    np.testing.assert_allclose(grpc["outputs"][0]["data"], rest["outputs"][0]["data"], rtol=1e-6)
    assert grpc["outputs"][1]["data"] == rest["outputs"][1]["data"] == classes


def test_model_metadata_names_the_tensors_of_the_served_bundle(demo):
    import httpx

    name = settings.MODEL_NAME.get()
    meta = httpx.get(f"{settings.serve_url()}/v2/models/{name}", timeout=10).json()
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("probabilities", "FP32", [-1, 3]), ("label", "BYTES", [-1])]  # fmt: skip


def test_proxy_and_revisions_listen_on_loopback_only(demo):
    from inference_service.rollout import revisions
    from tests.integration.test_stack import LOOPBACK, listening_addresses

    ports = {settings.SERVE_HTTP_PORT.get(), settings.SERVE_GRPC_PORT.get()}
    ports |= {p for r in revisions.load().revisions if r.running() for p in (r.http_port, r.grpc_port)}
    found = listening_addresses(ports)
    assert set(found) == ports
    assert all(addresses <= LOOPBACK for addresses in found.values()), found


def test_bad_request_is_a_400_with_the_reason(demo):
    bad = {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}
    with pytest.raises(PlatformError, match=r"400: .*shape \[N, 4\]"):
        infer_rest(settings.serve_url(), settings.MODEL_NAME.get(), bad)


def test_nobody_can_unload_the_served_model(demo):
    """KServe's repository extension would let any caller unload the model (then every request 404s while
    readiness still says ready). It is off: REST and gRPC refuse, and the model keeps answering."""
    import grpc
    import httpx
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    import inference_service.runtime.kserve_seam  # noqa: F401

    name, url = settings.MODEL_NAME.get(), settings.serve_url()
    for action in ("unload", "load"):
        response = httpx.post(f"{url}/v2/repository/models/{name}/{action}", timeout=10)
        assert response.status_code == 501 and "disabled" in response.json()["error"]
    channel = grpc.insecure_channel(f"127.0.0.1:{settings.SERVE_GRPC_PORT.get()}")
    with channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.GRPCInferenceServiceStub(channel).RepositoryModelUnload(
            pb.RepositoryModelUnloadRequest(model_name=name), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert httpx.get(f"{url}/v2/health/ready", timeout=10).status_code == 200
    assert httpx.get(f"{url}/v2/models/{name}/ready", timeout=10).status_code == 200
    assert infer_rest(url, name, load_request(DEFAULT_INPUT))["model_name"] == name


def serving_revision():
    """The daemon of the revision that has all the traffic now."""
    from inference_service.rollout import revisions

    state = revisions.load()
    return state.get(state.rolled_out).daemon


def test_a_rejected_request_logs_one_line(demo):
    bad = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]}
    with pytest.raises(PlatformError):
        infer_rest(settings.serve_url(), settings.MODEL_NAME.get(), bad)
    log = serving_revision().log_file.read_text()
    assert "rejected request: InvalidInput" in log
    assert "Traceback" not in log


def _post(path: str, body: bytes, headers: dict[str, str]):
    import httpx

    name = settings.MODEL_NAME.get()
    return httpx.post(f"{settings.serve_url()}/v2/models/{name}{path}", content=body, headers=headers, timeout=10)


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b'{"inputs": [', {"Content-Type": "application/json"}, "malformed request body"),
        (b"", {"Content-Type": "application/json"}, "malformed request body"),
        (
            b'{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}ABCD',
            {"Inference-Header-Content-Length": "101"},
            "declare 16 bytes but the request carries 4",
        ),
        (b"{}", {"Inference-Header-Content-Length": "abc"}, "must be an integer"),
        (b"{}", {"Inference-Header-Content-Length": "999"}, "does not fit a body of 2 bytes"),
    ],
    ids=["truncated-json", "empty", "truncated-binary", "header-not-int", "header-too-long"],
)
def test_malformed_bodies_are_400s_with_an_error_and_the_server_keeps_serving(demo, body, headers, message):
    response = _post("/infer", body, headers)
    assert response.status_code == 400 and message in response.json()["error"], response.text
    assert infer_rest(settings.serve_url(), settings.MODEL_NAME.get(), load_request(DEFAULT_INPUT))["outputs"]


def test_json_without_content_type_is_read_as_json(demo):
    import socket

    body = DEFAULT_INPUT.read_bytes()
    response = _post("/infer", body, {"Content-Type": ""})  # an empty header
    assert response.status_code == 200 and response.json()["outputs"][1]["name"] == "label", response.text
    # No header at all (what tritonclient's JSON mode sends); httpx always adds one, so a raw request.
    port, name = settings.SERVE_HTTP_PORT.get(), settings.MODEL_NAME.get()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + body)  # fmt: skip
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b'"label"' in answer, answer[:300]


def test_versioned_routes_answer_for_the_served_version_only(demo):
    import httpx

    name = settings.MODEL_NAME.get()
    version = demo.get_model_version_by_alias(name, "champion").version
    body = DEFAULT_INPUT.read_bytes()
    json_type = {"Content-Type": "application/json"}
    assert _post(f"/versions/{version}/infer", body, json_type).json()["model_version"] == str(version)
    base = f"{settings.serve_url()}/v2/models/{name}/versions"
    assert httpx.get(f"{base}/{version}/ready", timeout=10).json()["ready"] is True
    assert httpx.get(f"{base}/{version}", timeout=10).json()["inputs"][0]["name"] == "features"
    other = _post(f"/versions/{int(version) + 100}/infer", body, json_type)
    assert other.status_code == 404 and f"serving {version}" in other.json()["error"]


def test_an_oversized_body_is_refused_with_413_before_it_is_read(demo):
    import socket

    import httpx

    from inference_service.rollout import revisions

    state = revisions.load()
    port, name = state.get(state.rolled_out).http_port, settings.MODEL_NAME.get()
    claimed = (settings.SERVE_MAX_REQUEST_MB.get() << 20) + 1
    # Through the proxy (which streams bodies on): the revision's 413 reaches the caller.
    answer = httpx.post(f"{settings.serve_url()}/v2/models/{name}/infer", content=b" " * claimed, timeout=30)
    assert answer.status_code == 413 and "PLATFORM_SERVE_MAX_REQUEST_MB" in answer.json()["error"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # Only the headers are sent: the answer must come without the server waiting for the body.
        sock.sendall(f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {claimed}\r\n\r\n".encode())  # fmt: skip
        answer = ""
        while "PLATFORM_SERVE_MAX_REQUEST_MB" not in answer and (chunk := sock.recv(4096).decode()):
            answer += chunk
    assert answer.startswith("HTTP/1.1 413") and "PLATFORM_SERVE_MAX_REQUEST_MB" in answer, answer


def test_the_curl_script_sends_the_example_and_shows_rejections(demo, tmp_path):
    import json
    import os
    import subprocess

    script = DEFAULT_INPUT.with_name("prediction")
    env = {**os.environ, "PLATFORM_SERVE_HTTP_PORT": str(settings.SERVE_HTTP_PORT.get())}
    ok = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert [o["name"] for o in json.loads(ok.stdout)["outputs"]] == ["probabilities", "label"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}')
    refused = subprocess.run([str(script), str(bad)], capture_output=True, text=True, env=env, timeout=30)
    assert refused.returncode != 0 and "shape [N, 4]" in json.loads(refused.stdout)["error"]


def test_grpc_answers_for_the_served_version_only_and_rejects_non_finite_input(demo):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    import inference_service.runtime.kserve_seam  # noqa: F401

    name = settings.MODEL_NAME.get()
    version = demo.get_model_version_by_alias(name, "champion").version

    def infer(model_version: str, values: list[float]):
        tensor = pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP32", shape=[1, 4])
        tensor.contents.fp32_contents.extend(values)
        request = pb.ModelInferRequest(model_name=name, model_version=model_version, inputs=[tensor])
        with grpc.insecure_channel(f"127.0.0.1:{settings.SERVE_GRPC_PORT.get()}") as channel:
            return pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)

    assert infer(str(version), [5.1, 3.5, 1.4, 0.2]).model_version == str(version)
    for model_version, values, code, message in [
        (str(int(version) + 100), [5.1, 3.5, 1.4, 0.2], grpc.StatusCode.NOT_FOUND, f"serving {version}"),
        ("", [5.1, float("nan"), 1.4, 0.2], grpc.StatusCode.INVALID_ARGUMENT, "non-finite"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            infer(model_version, values)
        assert caught.value.code() == code and message in caught.value.details()


def test_metrics_count_answers_and_rejections_by_reason_per_version(demo):
    from inference_service.rollout.canary import running_revision_urls
    from inference_service.runtime.client import served_metrics

    name = settings.MODEL_NAME.get()
    version = str(demo.get_model_version_by_alias(name, "champion").version)
    (revision_url,) = running_revision_urls(name).values()  # /metrics is on the revision's own port only
    samples = served_metrics(revision_url)

    def value(metric: str, **labels) -> float:
        return samples.get((metric, tuple(sorted({"model": name, "version": version, **labels}.items()))), 0.0)

    # The tests above sent good requests and bad ones of each kind to this server.
    assert value("platform_inference_requests_total", outcome="ok") > 0
    assert value("platform_inference_rows_total") > value("platform_inference_requests_total", outcome="ok")
    for reason in ("shape", "malformed_json", "binary_body", "body_limit", "version"):
        assert value("platform_inference_rejections_total", reason=reason) >= 1, reason
    assert value("platform_inference_seconds_count") > 0


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_http_works_in_json_and_binary_mode(demo, binary):
    import tritonclient.http as triton

    name, rows = settings.MODEL_NAME.get(), features_of(load_request(DEFAULT_INPUT))
    client = triton.InferenceServerClient(f"127.0.0.1:{settings.SERVE_HTTP_PORT.get()}")
    try:
        assert client.is_server_ready() and client.is_model_ready(name)
        assert [t["name"] for t in client.get_model_metadata(name)["outputs"]] == ["probabilities", "label"]
        tensor = triton.InferInput("features", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "label")]
        result = client.infer(name, [tensor], outputs=outputs, request_id="triton-1")
    finally:
        client.close()
    assert result.as_numpy("probabilities").shape == (3, 3)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label").tolist()]
    assert labels == read_manifest(settings.lake_dir(), settings.DATASET.get())["classes"]
    assert result.get_response()["id"] == "triton-1"


def test_tritonclient_grpc_works(demo):
    """In its own interpreter, as a third-party client is: tritonclient's protos and KServe's (loaded in this
    process) declare the same `inference.*` messages and cannot share one descriptor pool."""
    import json
    import subprocess
    import sys

    script = (
        "import json, sys, numpy as np, tritonclient.grpc as triton\n"
        "target, name, rows = sys.argv[1], sys.argv[2], np.asarray(json.loads(sys.argv[3]), dtype=np.float32)\n"
        "client = triton.InferenceServerClient(target)\n"
        "assert client.is_model_ready(name)\n"
        "tensor = triton.InferInput('features', list(rows.shape), 'FP32')\n"
        "tensor.set_data_from_numpy(rows)\n"
        "result = client.infer(name, [tensor])\n"
        "print(json.dumps({'shape': list(result.as_numpy('probabilities').shape),\n"
        "                  'labels': [v.decode() for v in result.as_numpy('label').tolist()]}))\n"
    )
    rows = features_of(load_request(DEFAULT_INPUT))
    target = f"127.0.0.1:{settings.SERVE_GRPC_PORT.get()}"
    done = subprocess.run([sys.executable, "-c", script, target, settings.MODEL_NAME.get(), json.dumps(rows.tolist())],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["shape"] == [3, 3]
    assert answer["labels"] == read_manifest(settings.lake_dir(), settings.DATASET.get())["classes"]


def test_kserve_rest_client_works_with_binary_tensors(demo):
    import asyncio

    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    import inference_service.runtime.kserve_seam  # noqa: F401

    name, rows = settings.MODEL_NAME.get(), features_of(load_request(DEFAULT_INPUT))

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
        try:
            tensor = InferInput("features", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows, binary_data=True)
            request = InferRequest(model_name=name, infer_inputs=[tensor], parameters={"binary_data_output": True})
            return await client.infer(settings.serve_url(), request, model_name=name)
        finally:
            await client.close()

    result = asyncio.run(call())
    assert [o.name for o in result.outputs] == ["probabilities", "label"]
    assert result.outputs[0].as_numpy().shape == (3, 3)


# What a third party prints when it is not kept off the console: Ray's fatal-signal dumps, Python tracebacks and
# warnings, log lines of Spark (log4j), Ray, MLflow, uvicorn or kserve.
THIRD_PARTY = re.compile(
    r"\*\*\* SIG|SIGTERM|Traceback|Warning|WARNING|\bWARN\b|\bINFO\b|DEBUG|log4j|SLF4J|Using Spark|"
    r"\(raylet\)|\(pid=|\bray\.|\bmlflow\.|uvicorn|\bkserve\.(?!io)"
)


def test_the_demo_prints_only_its_own_progress_and_result_lines(demo):
    lines = (settings.state_dir() / "demo-console.log").read_text(errors="replace").splitlines()
    assert any("demo finished" in line for line in lines) and any("✔ tune:" in line for line in lines)
    foreign = [line for line in lines if THIRD_PARTY.search(line)]
    assert not foreign, "\n".join(foreign[:20])
