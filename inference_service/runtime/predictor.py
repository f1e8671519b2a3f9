"""The XGBoost model as a kserve.Model: loads one booster file and the bundle's metadata, answers Open Inference
Protocol v2 requests.

The bundle's `metadata/bundle.json` (written by `task export`) names the features and the classes, so model
metadata describes the real tensors: one input `features` FP32 [-1, n_features]; outputs `probabilities`
FP32 [-1, n_classes] and `label` BYTES [-1] (class names; INT64 indices when the request sets the parameter
`label_as_index`). Every rejection is an `InvalidInput` (HTTP 400 / gRPC INVALID_ARGUMENT) saying what is wrong
and what was expected.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
import uuid
from pathlib import Path
from typing import Any

import inference_service.runtime.kserve_seam  # noqa: F401  (before any other kserve import)

# isort: split

import kserve
import numpy as np
import orjson
import xgboost as xgb
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput
from kserve.utils.utils import generate_uuid

from inference_service.runtime import metrics
from inference_service.runtime.bounded import quote
from inference_service.runtime.coalesce import Coalescer
from inference_service.runtime.prediction_log import PredictionLog
from inference_service.runtime.tensors import INPUT, LABEL, LABEL_AS_INDEX, PROBABILITIES
from inference_service.runtime.xgboost_seam import DensePredict
from platform_core import settings
from platform_core.bundle import read_bundle

MODEL_SUFFIXES = (".ubj", ".json", ".bst")
PLATFORM = "xgboost"  # the model metadata's platform: what the booster is
FLOAT_DATATYPES = ("FP32", "FP64")
SERVICE_VERSION = importlib.metadata.version("kfserve-bundle")
INLINE_ROWS = 4096  # larger batches are predicted off the event loop
JSON_SLICE = 100_000  # values (JSON) or labels (binary BYTES) encoded per call in a large answer
_PLACEHOLDER = f"probabilities-{uuid.uuid4().hex}"  # unguessable: a request id can never equal it
_LABEL_PLACEHOLDER = f"labels-{uuid.uuid4().hex}"


def _json_list(parts: list[bytes]) -> list[bytes]:
    """The pieces of a JSON array made of already encoded comma-separated slices (no slice is empty)."""
    pieces = [b"["]
    for i, part in enumerate(parts):
        pieces += [b",", part] if i else [part]
    return [*pieces, b"]"]


def _first_non_number(data: list):
    """The first string in (nested) JSON data, or None."""
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            if isinstance(value, str):
                return value
        else:
            stack.pop()
    return None


class XGBoostPredictor(kserve.Model):
    def __init__(self, name: str, model_dir: str | Path, version: str | None = None):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.version = version  # registry version, echoed in every response so callers see who answered
        self._booster: xgb.Booster | None = None
        self._predict: DensePredict | None = None
        self._coalesced: Coalescer | None = None
        self._n_features = 0
        self.feature_names: list[str] = []
        self.classes: list[str] = []
        self._class_names = np.array([], dtype=object)
        self._framed = np.array([], dtype=object)  # class names as binary-extension BYTES elements
        self.max_rows = settings.SERVE_MAX_ROWS.get()
        self.allow_non_finite = settings.SERVE_ALLOW_NON_FINITE.get()
        self.prediction_log = PredictionLog(Path(), rate=0.0)  # replaced by load()
        self.metrics: metrics.Served | None = None  # bound by load(), once the version is known

    def load(self) -> bool:
        files = sorted(p for p in self.model_dir.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES)
        if len(files) != 1:
            found = [p.name for p in files] or "none"
            wanted = "/".join(MODEL_SUFFIXES)
            raise RuntimeError(f"expected exactly one {wanted} model file in {self.model_dir}, found {found}")
        bundle = read_bundle(self.model_dir)
        # nthread=1: the server shares two cores with its client; more threads only add contention.
        self._booster = xgb.Booster(params={"nthread": 1}, model_file=str(files[0]))
        self._n_features = self._booster.num_features()  # read once here, not per request
        self._predict = DensePredict(self._booster)  # inplace_predict's answer without its per-call Python
        self._coalesced = Coalescer(self._predict)  # concurrent small requests in one booster call
        self.feature_names, self.classes = list(bundle["feature_names"]), list(bundle["class_labels"])
        if len(self.feature_names) != self._n_features:
            raise RuntimeError(
                f"bundle.json names {len(self.feature_names)} features, the booster takes {self._n_features}"
            )
        self.bundle = bundle
        self._class_names = np.array([c.encode() for c in self.classes], dtype=object)
        self._framed = np.array([len(c).to_bytes(4, "little") + c for c in self._class_names], dtype=object)
        self.version = self.version or str(bundle["registry_version"])
        log_path = settings.state_dir() / "logs" / f"predictions-{self.name}-v{self.version}.jsonl"
        self.prediction_log = PredictionLog(log_path, settings.SERVE_PREDICTION_LOG_RATE.get())
        self.metrics = metrics.Served(self.name, self.version)
        self.metrics.classes(self.classes)
        self.metadata_json = orjson.dumps(self.metadata())  # encoded once: it cannot change while loaded
        self.ready = True
        return self.ready

    # name/datatype/shape only: gRPC's TensorMetadata has no other field (the REST model drops extras too).
    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": INPUT, "datatype": "FP32", "shape": [-1, self._n_features]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(self.classes)]},
            {"name": LABEL, "datatype": "BYTES", "shape": [-1]},
        ]

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata with what the OIP schema allows beyond tensors: the served registry version,
        the platform, and string properties naming the features, classes and the dataset they came from."""
        properties = {"features": ",".join(self.feature_names), "classes": ",".join(self.classes),
                      "registry_version": str(self.version or "")}  # fmt: skip
        for key in ("dataset", "dataset_version", "dataset_hash"):
            if self.bundle.get(key) is not None:
                properties[key] = str(self.bundle[key])
        versions = [str(self.version)] if self.version else []
        return {"name": self.name, "versions": versions, "platform": PLATFORM, "inputs": self.get_input_types(),
                "outputs": self.get_output_types(), "properties": properties}  # fmt: skip

    def _reject(self, reason: str, message: str) -> InvalidInput:
        """Count a rejection by reason (Prometheus) and build the 400 to raise."""
        self.metrics.rejected(reason)
        return InvalidInput(message)

    def _features(self, payload: InferRequest) -> np.ndarray:
        if len(payload.inputs) != 1:
            names = ", ".join(quote(t.name) for t in payload.inputs[:3]) + (", …" if len(payload.inputs) > 3 else "")
            raise self._reject("input_count",
                               f"expected exactly one input '{INPUT}', got {len(payload.inputs)}: {names}")  # fmt: skip
        tensor = payload.inputs[0]
        if tensor.name != INPUT:
            raise self._reject(
                "input_name", f"unknown input {quote(tensor.name)}: this model takes one input '{INPUT}'"
            )
        if tensor.datatype not in FLOAT_DATATYPES:
            raise self._reject("datatype", f"input '{INPUT}' must be FP32 or FP64, got {quote(tensor.datatype)}")
        shape = list(tensor.shape)
        if len(shape) != 2 or shape[1] != self._n_features or shape[0] < 1:
            raise self._reject(
                "shape", f"input '{INPUT}' must have shape [N, {self._n_features}] with N >= 1, got {quote(shape)}"
            )
        if shape[0] > self.max_rows:
            raise self._reject(
                "batch_limit",
                f"batch of {shape[0]} rows is over the limit of {self.max_rows} rows (PLATFORM_SERVE_MAX_ROWS)",
            )
        try:
            features = self._numbers(tensor, shape)
        except InvalidInput:
            raise
        except (ValueError, TypeError) as err:  # data length or element type does not match the declaration
            raise self._reject("data", f"input '{INPUT}': {quote(err, 200)}") from err
        if features.dtype.kind != "f" or features.shape != tuple(shape):
            raise self._reject("data", f"input '{INPUT}' must hold {shape[0] * shape[1]} numbers in shape {shape}")
        if not self.allow_non_finite:
            bad = ~np.isfinite(features)
            if bad.any():
                row, col = map(int, np.argwhere(bad)[0])
                raise self._reject(
                    "non_finite",
                    f"input '{INPUT}' has {int(bad.sum())} non-finite value(s), first at row {row} feature "
                    f"'{self.feature_names[col]}': NaN and Inf are rejected (PLATFORM_SERVE_ALLOW_NON_FINITE)",
                )
        return features

    def _numbers(self, tensor, shape: list[int]) -> np.ndarray:
        """The tensor as a float array. JSON data must be numbers: numpy would turn "5.1" into 5.1 silently, and
        the REST path would answer what gRPC (typed contents) never could."""
        data = tensor.data
        if isinstance(data, list) and data:  # a binary tensor (REST extension, gRPC raw contents) has no list
            values = np.asarray(data)
            if values.dtype.kind not in "fi" and (bad := _first_non_number(data)) is not None:
                raise self._reject("data", f"input '{INPUT}' ({tensor.datatype}) must hold numbers (null for a "
                                           f"missing value), got {quote(bad)}")  # fmt: skip
            dtype = np.float32 if tensor.datatype == "FP32" else np.float64
            return np.asarray(values, dtype=dtype).reshape(shape)  # null -> NaN (then the non-finite rule)
        return tensor.as_numpy()

    def _check_outputs(self, payload: InferRequest) -> None:
        """Requested outputs must be ones this model has, over REST and gRPC alike (KServe's REST encoder
        refused an unknown one, its gRPC path ignored it)."""
        for output in payload.request_outputs or []:
            if output.name not in (PROBABILITIES, LABEL):
                raise self._reject("output_name", f"unknown output {quote(output.name)}: this model answers "
                                                  f"'{PROBABILITIES}' and '{LABEL}'")  # fmt: skip

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        # kserve maps InvalidInput to HTTP 400 / gRPC INVALID_ARGUMENT; anything else becomes a 500.
        if not isinstance(payload, InferRequest):
            raise InvalidInput("only Open Inference Protocol v2 is supported: POST /v2/models/<name>/infer")
        rows = payload.inputs[0].shape[0] if payload.inputs and payload.inputs[0].shape else 0
        if isinstance(rows, int) and rows > INLINE_ROWS:
            # Big batches on a worker thread: liveness and small requests keep answering meanwhile.
            return await asyncio.to_thread(self.answer, payload)
        # Small ones on the loop, predicted together with the others waiting (see coalesce).
        return self._response(payload, *await self.infer_arrays_joined(payload))

    def infer_arrays(self, payload: InferRequest) -> tuple[np.ndarray, np.ndarray]:
        """Validate and predict: (probabilities FP32 [N, classes], class index [N]); counted and logged."""
        started = time.perf_counter()
        features = self._validated(payload)
        return self._concluded(payload, features, self._predict(features), started)

    async def infer_arrays_joined(self, payload: InferRequest) -> tuple[np.ndarray, np.ndarray]:
        """`infer_arrays` on the event loop, its rows predicted in one booster call with those of the other
        requests waiting on the loop (the same answer, see `inference_service.runtime.coalesce`)."""
        started = time.perf_counter()
        features = self._validated(payload)
        return self._concluded(payload, features, await self._coalesced(features), started)

    def _validated(self, payload: InferRequest) -> np.ndarray:
        self._check_outputs(payload)
        return self._features(payload)

    def _concluded(self, payload: InferRequest, features: np.ndarray, proba: np.ndarray,
                   started: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        # (predicted in place: no DMatrix per request; for multi:softprob the answer is [N, classes])
        if proba.ndim == 1:  # a binary:logistic booster answers P(class 1) only
            proba = np.column_stack([1.0 - proba, proba])
        index = proba.argmax(axis=1)
        counts = np.bincount(index, minlength=len(self.classes))
        self.metrics.answered(len(index), time.perf_counter() - started, counts)
        self.prediction_log.record(self.name, self.version or "", payload.id or "", features, index, self.classes)
        return proba, index

    def label_of(self, index: np.ndarray, as_index: bool) -> np.ndarray:
        return index.astype(np.int64) if as_index else self._class_names[index]

    def _label_data(self, index: np.ndarray, as_index: bool):
        """The `label` output's JSON data: class indices as an INT64 array, or the class names as a list."""
        return index.astype(np.int64) if as_index else [self.classes[i] for i in index.tolist()]

    def rest_answer(self, payload: InferRequest) -> tuple[bytes, int | None]:
        """The REST body of the answer and, for binary outputs, the length of its JSON header. Encoded straight
        from the arrays: orjson reads numpy natively, binary tensors are one join, where KServe's encoder makes
        a Python object per value (a 1M-row answer would hold the GIL, and with it the event loop, for seconds).
        Requests that name their outputs take KServe's encoder."""
        if payload.request_outputs:
            return self.answer(payload).to_rest()
        return self._rest_body(payload, *self.infer_arrays(payload))

    async def rest_answer_joined(self, payload: InferRequest) -> tuple[bytes, int | None]:
        """`rest_answer` on the event loop, predicted with the other requests waiting on it."""
        if payload.request_outputs:
            return self.answer(payload).to_rest()
        return self._rest_body(payload, *await self.infer_arrays_joined(payload))

    def _rest_body(self, payload: InferRequest, proba: np.ndarray, index: np.ndarray) -> tuple[bytes, int | None]:
        as_index = bool((payload.parameters or {}).get(LABEL_AS_INDEX, False))
        outputs = [
            {"name": PROBABILITIES, "shape": list(proba.shape), "datatype": "FP32"},
            {"name": LABEL, "shape": [len(index)], "datatype": "INT64" if as_index else "BYTES"},
        ]
        doc = {
            "id": payload.id or generate_uuid(),
            "model_name": self.name,
            "model_version": self.version,
            "outputs": outputs,
            "parameters": {"service_version": SERVICE_VERSION},
        }
        if not payload.use_binary_outputs:
            flat = proba.ravel()
            if flat.size <= JSON_SLICE:
                outputs[1]["data"] = self._label_data(index, as_index)
                outputs[0]["data"] = flat
                return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), None
            # In slices, joined once: for 1M rows x 3 classes, the labels in one orjson call and then a join and a
            # replace over the whole body each held the GIL (and with it the event loop) for ~130 ms (py-spy --gil).
            outputs[0]["data"], outputs[1]["data"] = _PLACEHOLDER, _LABEL_PLACEHOLDER
            head = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
            before, rest = head.split(b'"%s"' % _PLACEHOLDER.encode(), 1)
            middle, after = rest.split(b'"%s"' % _LABEL_PLACEHOLDER.encode(), 1)
            step, option = JSON_SLICE, orjson.OPT_SERIALIZE_NUMPY
            values = [orjson.dumps(flat[i : i + step], option=option)[1:-1] for i in range(0, flat.size, step)]
            names = [orjson.dumps(self._label_data(index[i : i + step], as_index), option=option)[1:-1]
                     for i in range(0, len(index), step)]  # fmt: skip
            return b"".join([before, *_json_list(values), middle, *_json_list(names), after]), None
        # The binary tensor data extension: 4-byte little-endian length before each BYTES element.
        raw = [proba.tobytes(), index.astype("<i8").tobytes() if as_index else self._framed_labels(index)]
        for output, data in zip(outputs, raw, strict=True):
            output["parameters"] = {"binary_data_size": len(data)}
        header = orjson.dumps(doc)
        return b"".join([header, *raw]), len(header)

    def _framed_labels(self, index: np.ndarray) -> bytes:
        """Class names as binary BYTES elements, in slices: over 1M rows, one fancy index and one join would hold
        the GIL (and the event loop) for ~0.17 s."""
        step = JSON_SLICE
        return b"".join([b"".join(self._framed[index[i : i + step]].tolist()) for i in range(0, len(index), step)])

    def answer(self, payload: InferRequest) -> InferResponse:
        """Validate, predict and build the response (the synchronous core of `predict`)."""
        return self._response(payload, *self.infer_arrays(payload))

    def _response(self, payload: InferRequest, proba: np.ndarray, index: np.ndarray) -> InferResponse:
        as_index = bool((payload.parameters or {}).get(LABEL_AS_INDEX, False))
        binary = payload.use_binary_outputs
        probabilities = InferOutput(PROBABILITIES, list(proba.shape), "FP32")
        probabilities.set_data_from_numpy(proba, binary_data=binary)
        label = InferOutput(LABEL, [len(index)], "INT64" if as_index else "BYTES")
        label.set_data_from_numpy(self.label_of(index, as_index), binary_data=binary)
        return InferResponse(
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            model_version=self.version,
            infer_outputs=[probabilities, label],
            parameters={"service_version": SERVICE_VERSION},
            use_binary_outputs=binary,
            requested_outputs=payload.request_outputs,
        )
