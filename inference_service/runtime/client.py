"""Open Inference Protocol v2 client: REST (httpx) and gRPC (KServe's own client)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np

from inference_service.runtime.tensors import INPUT, LABEL, PROBABILITIES
from platform_core.errors import DataError, PlatformError, ServiceUnavailable

DEFAULT_INPUT = Path(__file__).parents[1] / "input.json"  # inference_service/input.json


def _run(coro):
    """asyncio.run, also from code that already runs an event loop (a Jupyter kernel): then on a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def load_request(path: str | Path = DEFAULT_INPUT) -> dict:
    try:
        request = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise DataError(f"request file {path} does not exist", "pass a v2 request JSON file") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"request file {path} is not valid JSON: {exc}", "fix the file") from exc
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise DataError(f"{path} is not a v2 inference request", 'it needs an "inputs" list (see input.json)')
    return request


def features_of(request: dict) -> np.ndarray:
    """The first input tensor of a v2 request as a float32 array of its declared shape."""
    tensor = request["inputs"][0]
    try:
        return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(
            f"input {tensor.get('name')!r} is not a valid v2 tensor: {exc}", "compare with input.json"
        ) from exc


def infer_rest(base_url: str, model_name: str, request: dict, timeout: float = 10.0) -> dict:
    """POST /v2/models/<name>/infer; server-side rejections come back as one clear PlatformError."""
    url = f"{base_url.rstrip('/')}/v2/models/{model_name}/infer"
    try:
        response = httpx.post(url, json=request, timeout=timeout)
    except httpx.TransportError as exc:
        raise ServiceUnavailable(f"no model server answers at {base_url}", "run `task serve`") from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        hint = "check the request against input.json" if response.status_code < 500 else "see the server log"
        raise PlatformError(f"model server answered {response.status_code}: {detail}", hint)
    return response.json()


def infer_grpc(target: str, model_name: str, features: np.ndarray, timeout: float = 10.0,
               authority: str | None = None) -> dict:  # fmt: skip
    """v2 ModelInfer over gRPC (KServe's client); returns the response in the same shape as the REST JSON.
    `authority` (HTTP/2 `:authority`, e.g. `<model>.localhost`) picks the model behind a proxy that serves several."""
    import inference_service.runtime.kserve_seam  # noqa: F401  (before any other kserve import)

    # isort: split

    import grpc
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def call():
        # KServe's client drops its own options when given some: its unlimited message sizes are kept here.
        unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        options = [*unlimited, ("grpc.default_authority", authority)] if authority else None
        async with InferenceGRPCClient(target, timeout=timeout, retries=0, channel_args=options) as client:
            tensor = InferInput(INPUT, list(features.shape), "FP32")
            tensor.set_data_from_numpy(features.astype(np.float32), binary_data=True)
            return await client.infer(InferRequest(model_name=model_name, infer_inputs=[tensor]))

    try:
        result = _run(call())
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            raise ServiceUnavailable(f"no model server answers gRPC at {target}", "run `task serve`") from exc
        raise PlatformError(f"model server answered {exc.code().name}: {exc.details()}", "check the request") from exc
    outputs = []
    for output in result.outputs:
        data = output.as_numpy()
        values = [v.decode() if isinstance(v, bytes) else v for v in data.ravel().tolist()]
        outputs.append({"name": output.name, "datatype": output.datatype, "shape": list(data.shape), "data": values})
    return {"model_name": result.model_name, "model_version": result.model_version, "id": result.id,
            "parameters": dict(result.parameters or {}), "outputs": outputs}  # fmt: skip


def output(response: dict, name: str) -> dict:
    """One named output tensor of a v2 response (REST JSON shape)."""
    for tensor in response["outputs"]:
        if tensor["name"] == name:
            return tensor
    raise PlatformError(f"the response has no output {name!r}", f"outputs: {[t['name'] for t in response['outputs']]}")


def predicted_classes(response: dict) -> list[tuple[str, float]]:
    """(class label, its probability) per row: the server names the classes (`label`), from the bundle."""
    proba = output(response, PROBABILITIES)
    rows = np.asarray(proba["data"], dtype=float).reshape(proba["shape"])
    labels = output(response, LABEL)["data"]
    return [(str(label), float(row.max())) for label, row in zip(labels, rows, strict=True)]


def metadata(base_url: str, model_name: str, timeout: float = 10.0) -> dict:
    """GET /v2/models/<name>: the served tensors' names, datatypes and shapes."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/v2/models/{model_name}", timeout=timeout)
    except httpx.TransportError as exc:
        raise ServiceUnavailable(f"no model server answers at {base_url}", "run `task serve`") from exc
    if response.status_code != 200:
        raise PlatformError(f"model server answered {response.status_code}: {response.text}", "check the model name")
    return response.json()


def infer_binary(base_url: str, model_name: str, features: np.ndarray, timeout: float = 10.0) -> dict[str, np.ndarray]:
    """v2 infer with the binary tensor extension both ways (no JSON numbers): output name -> array."""
    import inference_service.runtime.kserve_seam  # noqa: F401  (before any other kserve import)

    # isort: split

    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=timeout))
        try:
            tensor = InferInput(INPUT, list(features.shape), "FP32")
            tensor.set_data_from_numpy(features.astype(np.float32), binary_data=True)
            binary_out = {"binary_data_output": True}
            request = InferRequest(model_name=model_name, infer_inputs=[tensor], parameters=binary_out)
            return await client.infer(base_url, request, model_name=model_name)
        finally:
            await client.close()

    result = _run(call())
    return {o.name: o.as_numpy() for o in result.outputs}


def served_metrics(base_url: str, timeout: float = 10.0) -> dict[tuple[str, tuple], float]:
    """The platform's series from the server's Prometheus /metrics: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base_url.rstrip('/')}/metrics", timeout=timeout).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text)
            if family.name.startswith("platform_inference") for s in family.samples}  # fmt: skip
