"""The peers `bench_serve.py` measures the platform's server against, each run as its own process:

- `stock`: KServe as a user writes it from the docs: a plain `kserve.Model` whose predict builds an
  `xgb.DMatrix` and calls `booster.predict`, answering `output-0`, on KServe's ModelServer with its defaults
  (`--quiet`: access and latency logging off). The one change: it binds 127.0.0.1, not 0.0.0.0.
- `bare`: an ASGI app that answers every request with a fixed body, on uvicorn with httptools and uvloop:
  the HTTP floor on this machine.
- `write_bundle`, imported by the benchmark: an iris booster plus `metadata/bundle.json`, as `task export` writes them.

    python benchmarks/serve_peers.py stock --model-dir D --port P [--quiet]
    python benchmarks/serve_peers.py bare --port P
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def write_bundle(directory: Path, model_name: str = "iris", rounds: int = 50) -> Path:
    """A booster trained on iris (softprob, 3 classes) and its bundle.json, as `task export` writes them."""
    import xgboost as xgb
    from sklearn.datasets import load_iris

    from platform_core.bundle import BUNDLE_FILE, MODEL_FILE

    iris = load_iris()
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(iris.data.astype("float32"), label=iris.target), rounds)
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / MODEL_FILE))
    (directory / BUNDLE_FILE).parent.mkdir(exist_ok=True)
    bundle = {"model_name": model_name, "registry_version": "1", "feature_names": FEATURES, "class_labels": CLASSES}
    (directory / BUNDLE_FILE).write_text(json.dumps(bundle))
    return directory


def stock(model_dir: str, port: int, quiet: bool) -> None:
    import inference_service.runtime.kserve_seam  # noqa: F401  (kserve parses sys.argv at import)

    # isort: split

    import kserve
    import xgboost as xgb
    from kserve import InferOutput, InferRequest, InferResponse
    from kserve.utils.utils import generate_uuid

    from platform_core.bundle import MODEL_FILE

    class StockXGBoost(kserve.Model):
        def __init__(self, name: str):
            super().__init__(name)
            self.booster = None

        def load(self) -> bool:
            self.booster = xgb.Booster(model_file=str(Path(model_dir) / MODEL_FILE))
            self.ready = True
            return True

        def predict(self, payload: InferRequest, headers=None) -> InferResponse:
            result = self.booster.predict(xgb.DMatrix(payload.inputs[0].as_numpy()))
            output = InferOutput("output-0", list(result.shape), "FP32")
            output.set_data_from_numpy(result.astype("float32"), binary_data=payload.use_binary_outputs)
            return InferResponse(model_name=self.name, infer_outputs=[output],
                                 response_id=payload.id or generate_uuid(),
                                 use_binary_outputs=payload.use_binary_outputs)  # fmt: skip

    class LoopbackStock(kserve.ModelServer):
        async def _serve(self):
            self._rest_server.config.host = "127.0.0.1"  # read by uvicorn when it binds, inside _serve
            await super()._serve()

    model = StockXGBoost("iris")
    model.load()
    options = {"enable_latency_logging": False, "access_log_format": None} if quiet else {}
    if quiet:
        import logging

        logging.getLogger("uvicorn.access").disabled = True
    LoopbackStock(http_port=port, enable_grpc=False, workers=1, **options).start([model])


def bare(port: int) -> None:
    import uvicorn

    body = json.dumps({"model_name": "iris", "outputs": [{"name": "output-0", "shape": [1, 3], "datatype": "FP32",
                                                         "data": [0.98, 0.01, 0.01]}]}).encode()  # fmt: skip
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the request body, as any server must
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["stock", "bare"])
    parser.add_argument("--model-dir")
    parser.add_argument("--port", type=int)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.peer == "stock":
        stock(args.model_dir, args.port, args.quiet)
    else:
        bare(args.port)


if __name__ == "__main__":
    main()
