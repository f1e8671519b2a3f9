"""A revision's model server against requests that could hold or flood it, and what it says about itself: a real
server process (`python -m inference_service.runtime.server`) on loopback ports, attacked over raw sockets, httpx and
gRPC. Stalled bodies get 408 and a closed connection; error texts and log lines quote user input at a bounded length,
over gRPC as INVALID_ARGUMENT; metadata carries version, platform and properties; REST and gRPC agree; concurrent
requests, predicted together, each get their own answer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import grpc
import httpx
import pytest

from platform_core.bundle import BUNDLE_FILE
from platform_core.processes import free_port
from tests.conftest import wait_until_serving

BODY_TIMEOUT = 1.5
HUGE = "n" * (5 << 20)  # a 5 MB input name
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, iris_booster):
    bundle = tmp_path_factory.mktemp("bundle")
    iris_booster.save_model(str(bundle / "model.ubj"))
    (bundle / BUNDLE_FILE).parent.mkdir()
    (bundle / BUNDLE_FILE).write_text(json.dumps({
        "model_name": "iris", "registry_version": "7", "model_file": "model.ubj", "feature_names": FEATURES,
        "class_labels": ["setosa", "versicolor", "virginica"], "dataset": "iris", "dataset_version": 3,
        "dataset_hash": "abc123",
    }))  # fmt: skip
    http_port, grpc_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    env = {**os.environ, "PLATFORM_SERVE_BODY_TIMEOUT_S": str(BODY_TIMEOUT),
           "PLATFORM_STATE_DIR": str(tmp_path_factory.mktemp("state"))}  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "inference_service.runtime.server", "--model-name", "iris", "--model-dir",
             str(bundle), "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--host", "127.0.0.1"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_until_serving(process, http_port, "the server", output=log.read_text)
        yield {"http": http_port, "grpc": grpc_port, "log": log, "url": f"http://127.0.0.1:{http_port}"}
    finally:
        process.terminate()
        process.wait(timeout=30)


def _stalled(port: int, close: bool) -> tuple[float, bytes]:
    """A POST that promises 100 bytes and sends 10; returns (seconds to the answer, everything until EOF)."""
    head = ("POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: 100\r\n{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT + 10) as sock:
        sock.sendall(head.encode() + b'{"inputs":')
        started, received = time.monotonic(), b""
        while chunk := sock.recv(65536):  # EOF: the server closed the connection
            received += chunk
        return time.monotonic() - started, received


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_a_stalled_body_gets_408_and_the_connection_closed(server, close):
    seconds, answer = _stalled(server["http"], close)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert "did not arrive within" in json.loads(body)["error"]
    assert BODY_TIMEOUT - 0.2 <= seconds < BODY_TIMEOUT + 3, seconds
    # and the server still answers
    assert httpx.get(f"{server['url']}/v2/health/ready", timeout=5).status_code == 200


def _infer(name: str = "features", outputs: list | None = None, inputs: int = 1) -> dict:
    tensor = {"name": name, "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
    body = {"inputs": [tensor] * inputs}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


def test_error_texts_and_log_lines_quote_user_input_at_a_bounded_length(server):
    huge = httpx.post(f"{server['url']}/v2/models/iris/infer", json=_infer(HUGE), timeout=60)
    assert huge.status_code == 400 and len(huge.content) < 2048, len(huge.content)
    assert "unknown input 'nnnn" in huge.json()["error"] and f"({len(HUGE)} characters)" in huge.json()["error"]
    many = httpx.post(f"{server['url']}/v2/models/iris/infer", json=_infer(inputs=10_000), timeout=60)
    assert many.status_code == 400 and len(many.content) < 2048, len(many.content)
    assert "got 10000" in many.json()["error"]
    time.sleep(0.5)  # the log handler flushes per record; give the process a moment
    longest = max(len(line) for line in server["log"].read_text().splitlines())
    assert longest < 4096, f"a log line of {longest} characters"


def _stub(server):
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server['grpc']}", options=[("grpc.max_send_message_length", 64 << 20)])
    return channel, pb_grpc.GRPCInferenceServiceStub(channel)


def _grpc_request(name: str = "features", outputs: list | None = None):
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend([5.1, 3.5, 1.4, 0.2])
    requested = [pb.ModelInferRequest.InferRequestedOutputTensor(name=o) for o in outputs or []]
    return pb.ModelInferRequest(model_name="iris", inputs=[tensor], outputs=requested)


def test_grpc_errors_are_invalid_argument_with_a_bounded_message(server):
    channel, stub = _stub(server)
    with channel:
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(_grpc_request(HUGE), timeout=60)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()[:200]
        assert len(caught.value.details()) < 1200 and "unknown input 'nnnn" in caught.value.details()


def test_an_unknown_requested_output_is_refused_alike_over_rest_and_grpc(server):
    rest = httpx.post(f"{server['url']}/v2/models/iris/infer", json=_infer(outputs=["nope"]), timeout=10)
    assert rest.status_code == 400 and "unknown output 'nope'" in rest.json()["error"]
    known = httpx.post(f"{server['url']}/v2/models/iris/infer", json=_infer(outputs=["label"]), timeout=10)
    assert known.status_code == 200, known.text
    channel, stub = _stub(server)
    with channel:
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(_grpc_request(outputs=["nope"]), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "unknown output 'nope'" in caught.value.details()
        assert stub.ModelInfer(_grpc_request(outputs=["label"]), timeout=10).outputs


def test_metadata_names_version_platform_features_classes_and_dataset(server):
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    rest = httpx.get(f"{server['url']}/v2/models/iris", timeout=10).json()
    assert rest["versions"] == ["7"] and rest["platform"] == "xgboost"
    assert rest["properties"] == {"features": ",".join(FEATURES), "classes": "setosa,versicolor,virginica",
                                  "registry_version": "7", "dataset": "iris", "dataset_version": "3",
                                  "dataset_hash": "abc123"}  # fmt: skip
    assert all(isinstance(v, str) for v in rest["properties"].values())  # the OIP schema: string values
    assert rest["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert httpx.get(f"{server['url']}/v2/models/iris/versions/7", timeout=10).json() == rest
    assert httpx.get(f"{server['url']}/v2", timeout=10).json()["extensions"] == []  # repository API is off
    channel, stub = _stub(server)
    with channel:
        answer = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris"), timeout=10)
        assert list(answer.versions) == ["7"] and answer.platform == "xgboost"
        assert list(stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10).extensions) == []


def test_a_grpc_tensor_in_raw_contents_is_predicted(server):
    # KServe's own client sends binary tensors as raw_input_contents: no list data, the bytes are the tensor
    import numpy as np
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP32", shape=[2, 4])
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    request = pb.ModelInferRequest(model_name="iris", inputs=[tensor], raw_input_contents=[rows.tobytes()])
    channel, stub = _stub(server)
    with channel:
        answer = stub.ModelInfer(request, timeout=10)
    assert [o.name for o in answer.outputs] == ["probabilities", "label"]


def test_concurrent_requests_each_get_the_answer_they_get_alone(server):
    # Concurrent small requests share one booster call (inference_service/runtime/coalesce.py): over REST and
    # gRPC at once, FP32 and FP64, each must still get exactly its own rows' answer.
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    rng = np.random.default_rng(1)
    batches = [rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], (int(n), 4)).astype(np.float32)
               for n in rng.integers(1, 4, size=48)]  # fmt: skip
    bodies = [{"inputs": [{"name": "features", "shape": list(b.shape), "datatype": "FP64" if i % 4 == 0 else "FP32",
                           "data": b.ravel().tolist()}]} for i, b in enumerate(batches)]  # fmt: skip
    url = f"{server['url']}/v2/models/iris/infer"

    def probabilities(answer: dict) -> np.ndarray:
        return np.float32(answer["outputs"][0]["data"])

    alone = [probabilities(httpx.post(url, json=b, timeout=10).json()) for b in bodies]

    async def rest_together():
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=16)) as client:
            return await asyncio.gather(*[client.post(url, json=b) for b in bodies])

    def grpc_one(stub, batch):
        tensor = pb.ModelInferRequest.InferInputTensor(name="features", datatype="FP32", shape=list(batch.shape))
        tensor.contents.fp32_contents.extend(batch.ravel().tolist())
        answer = stub.ModelInfer(pb.ModelInferRequest(model_name="iris", inputs=[tensor]), timeout=30)
        return np.frombuffer(answer.raw_output_contents[0], "<f4") if answer.raw_output_contents else \
            np.float32(answer.outputs[0].contents.fp32_contents)  # fmt: skip

    channel, stub = _stub(server)
    with channel, ThreadPoolExecutor(8) as pool:
        grpc_answers = pool.map(lambda b: grpc_one(stub, b), batches)
        rest_answers = asyncio.run(rest_together())
        grpc_answers = list(grpc_answers)
    for i, (mine, response) in enumerate(zip(alone, rest_answers, strict=True)):
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(probabilities(response.json()), mine, err_msg=f"REST request {i}")
        # (gRPC sends every batch as FP32: the FP64 copies of float32 values are predicted alike)
        np.testing.assert_array_equal(grpc_answers[i].reshape(mine.shape), mine, err_msg=f"gRPC request {i}")
