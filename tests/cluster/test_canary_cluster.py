"""The cluster path of the rollout commands, against an HTTP server on loopback that replays recorded KServe API
responses: the predictor status KServe's rollout docs show for a tagged 10% canary
(../shared/specs/kserve/predictor-status-canary-10-tagged.json, read in place) and the same object before and after.
The replay knows no Kubernetes behaviour: it answers each GET with the next recorded object and records what the
client sent, so the tests see the real `kubernetes` client's requests and the real waiting logic."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from inference_service.rollout import canary, isvc
from platform_core.errors import PlatformError

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "kserve"
CANARY_10 = SPECS / "predictor-status-canary-10-tagged.json"
pytestmark = pytest.mark.skipif(not CANARY_10.exists(), reason=f"recorded KServe status not present at {CANARY_10}")


def _recorded() -> dict:
    return json.loads(CANARY_10.read_text())


def _object(predictor_status: dict, version: str = "1", percent: int | None = None, annotations=None,
            name: str = "my-model") -> dict:  # fmt: skip
    obj = isvc.render(name, version, f"s3://mlops/serving/{name}/v{version}", percent)
    obj["metadata"]["annotations"].update(annotations or {})
    obj["status"] = {"components": {"predictor": predictor_status}}
    return obj


def _stable_only() -> dict:
    """Before the canary: the recorded object with revision 00001 at 100% (as KServe shows it, no tags)."""
    status = _recorded()
    prev = status["traffic"][1]
    status.update(latestCreatedRevision=prev["revisionName"], latestReadyRevision=prev["revisionName"])
    status["traffic"] = [{"latestRevision": True, "percent": 100, "revisionName": prev["revisionName"]}]
    return status


def _promoted() -> dict:
    status = _recorded()
    latest = status["traffic"][0]
    status.update(
        latestRolledoutRevision=latest["revisionName"], previousRolledoutRevision="my-model-predictor-default-00001"
    )
    status["traffic"] = [{"latestRevision": True, "percent": 100, "revisionName": latest["revisionName"]}]
    return status


class Replay:
    """GET -> the next recorded object (the last one repeats; None: 404, no such object); PATCH/POST -> recorded,
    answered with the object."""

    def __init__(self, objects: list[dict]):
        self.objects, self.requests = objects, []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: dict, code: int = 200):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                replay.requests.append(("GET", self.path, None, None))
                obj = replay.objects.pop(0) if len(replay.objects) > 1 else replay.objects[0]
                if obj is None:
                    self._answer({"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}, 404)
                else:
                    self._answer(obj)

            def do_PATCH(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                replay.requests.append((self.command, self.path, self.headers["Content-Type"], body))
                self._answer(next((o for o in replay.objects if o is not None), body))

            do_POST = do_PATCH  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def patches(self) -> list[tuple]:
        return [r for r in self.requests if r[0] == "PATCH"]


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    replays = []

    def start(objects: list[dict]) -> Replay:
        replay = Replay(objects)
        replays.append(replay)
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "replay",
            "clusters": [{"name": "replay", "cluster": {"server": replay.url}}],
            "users": [{"name": "replay", "user": {"token": "recorded"}}],
            "contexts": [{"name": "replay", "context": {"cluster": "replay", "user": "replay"}}],
        }  # fmt: skip
        (tmp_path / "kubeconfig").write_text(json.dumps(kubeconfig))
        return replay

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setenv("PLATFORM_PROFILE", "cluster")
    monkeypatch.setenv("PLATFORM_MODEL_NAME", "my-model")
    monkeypatch.setenv("PLATFORM_K8S_NAMESPACE", "default")
    monkeypatch.setenv("PLATFORM_CANARY_WAIT_S", "2")
    # The bundle on S3 is export's concern (tests/model/test_gate.py), not the Kubernetes API's being replayed.
    monkeypatch.setattr(canary, "_exported", lambda name, version: None)
    yield start
    for replay in replays:
        replay.server.shutdown()
        replay.server.server_close()


def test_start_patches_the_isvc_and_waits_until_the_canary_has_its_traffic(cluster):
    replay = cluster([_object(_stable_only()), _object(_stable_only()), _object(_recorded(), "3", 10)])
    status, change = canary.start("3", 10)
    ((method, path, content_type, body),) = replay.patches()
    assert path == "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/my-model"
    assert content_type == "application/merge-patch+json"
    assert body["spec"]["predictor"] == {
        "canaryTrafficPercent": 10,
        "model": {"storageUri": "s3://mlops/serving/my-model/v3"},
    }
    assert body["metadata"]["annotations"][isvc.MODEL_VERSION_ANNOTATION] == "3"
    assert [(t["revisionName"][-5:], t["percent"], t["tag"]) for t in status["traffic"]] == [
        ("00003", 10, "latest"), ("00001", 90, "prev")]  # fmt: skip
    assert change.kubectl().startswith("kubectl patch isvc my-model -n default --type=merge -p '{")
    assert json.loads(change.kubectl().split(" -p ", 1)[1].strip("'")) == body  # the printed line sends the same


def test_promote_removes_the_field_with_a_json_patch(cluster, monkeypatch):
    import ml_platform.gate

    monkeypatch.setattr(canary, "_move_champion", lambda name, version: None)  # the registry is not this test's subject
    assert ml_platform.gate  # imported: the monkeypatched path is the real one
    replay = cluster([_object(_recorded(), "3", 10), _object(_recorded(), "3", 10), _object(_recorded(), "3", 10),
                      _object(_promoted(), "3")])  # fmt: skip
    status, change, _ = canary.promote()
    ((_, _, content_type, body),) = replay.patches()
    assert content_type == "application/json-patch+json"
    assert body == [{"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"}]
    assert status["traffic"] == [
        {"latestRevision": True, "percent": 100, "revisionName": "my-model-predictor-default-00003"}
    ]
    assert change.kubectl().endswith(
        """--type=json -p '[{"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"}]'"""
    )


def test_a_field_the_cluster_ignores_fails_clearly_after_the_wait(cluster):
    """What RawDeployment mode does: the patch is accepted and the traffic never changes."""
    replay = cluster([_object(_stable_only())])
    with pytest.raises(PlatformError, match="did not get 10%") as caught:
        canary.start("3", 10)
    assert "RawDeployment" in caught.value.hint and len(replay.patches()) == 1


def test_rawdeployment_mode_is_refused_before_anything_is_patched(cluster):
    replay = cluster([_object(_stable_only(), annotations={"serving.kserve.io/deploymentMode": "RawDeployment"})])
    with pytest.raises(PlatformError, match="RawDeployment"):
        canary.start("3", 10)
    assert replay.patches() == []


def test_status_reads_the_predictor_status_and_set_needs_a_canary(cluster):
    cluster([_object(_stable_only())])
    status = canary.status()
    assert status["latestRolledoutRevision"] == "my-model-predictor-default-00001"
    with pytest.raises(PlatformError, match="no canary of my-model is in progress"):
        canary.set_weight(30)
    assert copy.deepcopy(status)["revisions"][0]["name"] == "my-model-predictor-default-00001"


def test_serving_a_model_without_an_inferenceservice_creates_one_of_its_name(cluster):
    """A second model is its own InferenceService: created whole (not a patch of the first one's), and the printed
    kubectl line applies exactly that object."""
    served = _object(_stable_only(), name="second-model")
    replay = cluster([None, None, served])
    status, change = canary.serve("1", model="second-model")
    posts = [r for r in replay.requests if r[0] == "POST"]
    assert replay.patches() == [] and len(posts) == 1
    ((_, path, _, body),) = posts
    assert path == "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
    assert body["metadata"]["name"] == "second-model" and isvc.storage_uri(body).endswith("/second-model/v1")
    assert [t["percent"] for t in status["traffic"]] == [100]
    line = change.kubectl()
    assert line.startswith("kubectl apply -f - <<'EOF'\n") and line.endswith("EOF")
    assert yaml.safe_load(line.split("\n", 1)[1].rsplit("EOF", 1)[0]) == body
