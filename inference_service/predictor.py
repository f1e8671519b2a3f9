"""The XGBoost model as a kserve.Model: loads one booster file, answers Open Inference Protocol v2 requests."""

from pathlib import Path

import inference_service.kserve_guard  # noqa: F401  (before any kserve import)

# isort: split

import kserve
import xgboost as xgb
from kserve import InferRequest, InferResponse
from kserve.errors import InvalidInput
from kserve.utils.utils import get_predict_response

MODEL_SUFFIXES = (".ubj", ".json", ".bst")
FLOAT_DATATYPES = ("FP32", "FP64")


class XGBoostPredictor(kserve.Model):
    def __init__(self, name: str, model_dir: str | Path, version: str | None = None):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.version = version  # registry version, echoed in every response so callers see who answered
        self._booster: xgb.Booster | None = None
        self._n_features = 0

    def load(self) -> bool:
        files = sorted(p for p in self.model_dir.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES)
        if len(files) != 1:
            found = [p.name for p in files] or "none"
            wanted = "/".join(MODEL_SUFFIXES)
            raise RuntimeError(f"expected exactly one {wanted} model file in {self.model_dir}, found {found}")
        # nthread=1: the server shares two cores with its client; more threads only add contention.
        self._booster = xgb.Booster(params={"nthread": 1}, model_file=str(files[0]))
        self._n_features = self._booster.num_features()  # read once here, not per request
        self.ready = True
        return self.ready

    # Sync on purpose: kserve awaits coroutine predicts and calls plain ones inline on the event loop.
    # A small-batch booster call takes microseconds, less than a hop to the thread pool would cost;
    # switch to `async def` + asyncio.to_thread only if large batches start stalling other requests.
    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        # kserve maps InvalidInput to HTTP 400 / gRPC INVALID_ARGUMENT; anything else becomes a 500.
        if not isinstance(payload, InferRequest):
            raise InvalidInput("only Open Inference Protocol v2 is supported: POST /v2/models/<name>/infer")
        if len(payload.inputs) != 1:
            raise InvalidInput(f"expected exactly 1 input tensor, got {len(payload.inputs)}")
        tensor = payload.inputs[0]
        if tensor.datatype not in FLOAT_DATATYPES:
            raise InvalidInput(f"input '{tensor.name}' must be FP32 or FP64, got {tensor.datatype}")
        try:
            features = tensor.as_numpy()
        except ValueError as err:  # data length does not match the declared shape
            raise InvalidInput(f"input '{tensor.name}': {err}") from err
        if features.ndim != 2 or features.shape[1] != self._n_features:
            shape = list(features.shape)
            raise InvalidInput(f"input '{tensor.name}' must have shape [N, {self._n_features}], got {shape}")
        # inplace_predict skips building a DMatrix per request; for multi:softprob it returns [N, classes].
        result = self._booster.inplace_predict(features)
        # Same helper kserve's xgbserver uses, so the response ("output-0", dtype, binary-output
        # negotiation, request id) matches the stock runtime.
        response = get_predict_response(payload, result, self.name)
        response.model_version = self.version
        return response
