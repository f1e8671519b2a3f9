"""The hot path of REST inference: a v2 request decoded straight from its bytes and answered from arrays.

KServe's route pays, per request, for FastAPI routing, pydantic models of the request and the response, its
middleware stack, and a Python list per tensor both ways (`[v.item() for v in ...]`, even for binary inputs).
For the requests a served model takes as they are (inputs as JSON data or binary-extension tensors, no
per-output options), `rest.V2Gaps` answers here instead: in front of KServe's app, with the same `kserve.Model`.
Everything else, malformed requests included, is replayed to KServe's route, which answers or rejects it as
before, so the error paths stay in one place.
"""

from __future__ import annotations

from inference_service.runtime import kserve_seam  # before any other kserve import

# isort: split

import orjson
from kserve import InferInput, InferRequest

from inference_service.runtime import json_helper

LARGE_JSON = 4 << 20  # JSON bodies above this are parsed in the helper process (see json_helper)


class NotFast(Exception):
    """The request is not one this path decodes; KServe's route takes it."""


def _str(value) -> bool:
    return isinstance(value, str)


def decode(body: bytes, header_length: bytes | None, model_name: str) -> InferRequest:
    """A v2 request (JSON, or binary extension with a JSON header of `header_length` bytes) -> InferRequest.
    Binary tensors keep their bytes (`as_numpy` reads them with frombuffer, no list in between)."""
    offset = int(header_length) if header_length is not None else len(body)
    if header_length is None and len(body) > LARGE_JSON:
        doc = json_helper.parse(body)  # numeric tensors come back as arrays
        if isinstance(doc, orjson.JSONDecodeError):
            raise NotFast()
    else:
        try:
            doc = orjson.loads(body[:offset] if header_length is not None else body)
        except orjson.JSONDecodeError as exc:
            raise NotFast() from exc
    if not isinstance(doc, dict) or doc.get("outputs") is not None or not isinstance(doc.get("inputs"), list):
        raise NotFast()
    parameters, request_id = doc.get("parameters"), doc.get("id")
    if not (parameters is None or isinstance(parameters, dict)) or not (request_id is None or _str(request_id)):
        raise NotFast()
    inputs = []
    for tensor in doc["inputs"]:
        if not isinstance(tensor, dict):
            raise NotFast()
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        params = tensor.get("parameters") or {}
        if not (_str(name) and _str(datatype) and isinstance(shape, list) and isinstance(params, dict)):
            raise NotFast()
        if "data" in tensor:
            inputs.append(InferInput(name, shape, datatype, data=tensor["data"], parameters=params))
        elif header_length is not None and isinstance(params.get("binary_data_size"), int):
            size = params["binary_data_size"]
            binary = InferInput(name, shape, datatype, parameters=params)
            kserve_seam.set_raw_tensor(binary, body[offset : offset + size])
            offset += size
            inputs.append(binary)
        else:
            raise NotFast()
    return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=request_id, parameters=parameters)
