"""The served model under fuzzing, load and its notebook.

Schema-driven fuzzing of the REST API against the Open Inference Protocol spec (upstream copy in ../shared/specs/oip/,
read in place): whatever schemathesis generates, valid or not, gets no 5xx, and every 4xx carries {"error"}. The
spec's path placeholders are filled with the served model's name and version in memory. A bounded load must not
fail or grow the server; inference_service/notebooks/serve.ipynb runs top to bottom against it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from platform_core import settings

pytestmark = [pytest.mark.integration]

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "oip" / "open_inference_rest.yaml"
EXAMPLES = 25  # per operation and mode: bounded, so the suite's time stays bounded


@pytest.fixture(scope="module")
def served(demo):
    """The demo's served model (@champion), as the demo left it running."""
    from types import SimpleNamespace

    name = settings.MODEL_NAME.get()
    return SimpleNamespace(model_name=name, version=str(demo.get_model_version_by_alias(name, "champion").version))


def test_no_generated_request_gets_a_5xx_and_every_4xx_carries_an_error(served):
    if not SPEC.exists():
        pytest.skip(f"the upstream OIP spec is not at {SPEC} (../shared/specs is not beside the clone)")
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    text = SPEC.read_text().replace("${MODEL_NAME}", served.model_name).replace("${MODEL_VERSION}", served.version)
    schema = schemathesis.openapi.from_dict(yaml.safe_load(text))
    base, seen, problems = settings.serve_url(), [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hsettings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                       suppress_health_check=list(HealthCheck))  # fmt: skip
            def probe(case):
                response = case.call(base_url=base, timeout=10)
                seen.append(response.status_code)
                if response.status_code >= 500:
                    problems.append(f"{case.method} {case.formatted_path} -> {response.status_code} {response.text}")
                elif response.status_code >= 400:
                    try:
                        body = response.json()
                    except ValueError:
                        body = None
                    if not (isinstance(body, dict) and "error" in body):
                        problems.append(f"{case.method} {case.formatted_path} -> {response.status_code} without "
                                        f"an error field: {response.text[:200]}")  # fmt: skip

            try:
                probe()
            except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert not problems, "\n".join(problems[:10])
    assert any(400 <= s < 500 for s in seen) and any(s == 200 for s in seen)  # both kinds were exercised


def _server_rss() -> int:
    import psutil

    from tests.integration.test_demo import serving_revision

    pid = serving_revision().pid()
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.memory_info().rss for p in processes if "inference_service.runtime.server" in " ".join(p.cmdline()))


def test_a_bounded_load_gets_no_errors_and_does_not_grow_the_server(served):
    """8 loopback clients for a fixed time, batch 1 and batch 256: zero failed requests, RSS growth < 10%."""
    import threading
    import time

    import httpx
    import numpy as np

    url = f"{settings.serve_url()}/v2/models/{served.model_name}/infer"
    rng = np.random.default_rng(0)

    def body(rows: int) -> dict:
        data = rng.uniform(0.1, 8.0, size=(rows, 4)).astype(np.float32)
        return {"inputs": [{"name": "features", "shape": [rows, 4], "datatype": "FP32", "data": data.ravel().tolist()}]}

    bodies = [body(1), body(256)]
    with httpx.Client() as warm:  # first requests allocate caches: measure from a warm server
        for b in bodies * 20:
            warm.post(url, json=b, timeout=10).raise_for_status()
    before = _server_rss()
    counts, failures, stop = [], [], time.monotonic() + 6

    def client(index: int) -> None:
        done = 0
        with httpx.Client() as http:
            while time.monotonic() < stop:
                response = http.post(url, json=bodies[index % 2], timeout=10)
                if response.status_code != 200:
                    failures.append(response.status_code)
                done += 1
        counts.append(done)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = _server_rss()
    assert not failures and sum(counts) > 100, (failures[:5], sum(counts))
    assert after < before * 1.10, f"RSS grew {before >> 20} -> {after >> 20} MiB over {sum(counts)} requests"


NOTEBOOK = settings.REPO_ROOT / "inference_service" / "notebooks" / "serve.ipynb"


def test_serve_notebook_is_committed_without_outputs():
    import json

    code = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_serve_notebook_executes_against_the_served_model(served):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment: the session's state dir, ports and logins.
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # fmt: skip
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "inputs features FP32 [-1, 4]" in text and "outputs label BYTES [-1]" in text
    assert "(3000, 3)" in text and "['probabilities', 'label']" in text
    assert "platform_inference_requests_total" in text and "'outcome': 'ok'" in text
    assert "traffic 100 %" in text and "answered by " + served.model_name + "-predictor-" in text


def _stalled_through_the_proxy(close: bool) -> tuple[float, bytes]:
    import socket
    import time

    head = (f"POST /v2/models/{settings.MODEL_NAME.get()}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\nContent-Length: 100\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n")  # fmt: skip
    limit = settings.SERVE_BODY_TIMEOUT_S.get() + 20
    with socket.create_connection((settings.HOST.get(), settings.SERVE_HTTP_PORT.get()), timeout=limit) as sock:
        sock.sendall(head.encode() + b'{"inputs":')
        started, received = time.monotonic(), b""
        while chunk := sock.recv(65536):  # until the proxy closes the connection
            received += chunk
        return time.monotonic() - started, received


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_a_stalled_body_through_the_proxy_gets_408_and_the_connection_closed(served, close):
    import json

    seconds, answer = _stalled_through_the_proxy(close)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert "did not arrive within" in json.loads(body)["error"]
    assert seconds < settings.SERVE_BODY_TIMEOUT_S.get() + 5, seconds


def test_the_api_docs_and_metrics_are_not_on_the_public_port(served):
    import httpx

    for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
        answer = httpx.get(f"{settings.serve_url()}{path}", timeout=10)
        assert answer.status_code == 404 and "not served on the public port" in answer.json()["error"], path
    # the v2 API still is
    assert httpx.get(f"{settings.serve_url()}/v2/models/{served.model_name}", timeout=10).status_code == 200


# Last: it stops the served model the tests above (and test_demo, test_demo_canary) talk to.
def test_demo_records_stage_timings_and_stopping_serving_stops_proxy_and_revisions(demo, local_stack):
    import json

    from inference_service.rollout import revisions
    from platform_core.stack import SERVING_PROXY, revision_daemons

    timings = json.loads((settings.state_dir() / "demo-timings.json").read_text())
    assert list(timings) == ["up", "etl", "tune", "gate", "export", "serve", "predict", "tune (2nd, alongside serve)",
                             "canary", "predict (after canary)", "wall"]  # fmt: skip
    running = [d for d in revision_daemons() if d.pid() is not None]
    assert SERVING_PROXY.pid() is not None and running
    stopped = revisions.stop_all()
    assert SERVING_PROXY.name in stopped and len(stopped) == 1 + len(running)
    assert SERVING_PROXY.pid() is None and not [d for d in revision_daemons() if d.pid() is not None]
