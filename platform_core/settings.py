"""Every setting of the platform, in one typed registry (after MLflow's environment_variables.py).

Each setting is an environment variable with a type and a default. The profile (``PLATFORM_PROFILE``:
``local`` or ``cluster``) changes defaults, never code paths: in ``local`` the object store and tracking
server are the ones ``platform up`` starts on 127.0.0.1, with credentials generated into the state dir.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from platform_core.errors import ConfigError

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]
REGISTRY: dict[str, _Setting[Any]] = {}


class _Setting(Generic[T]):
    """One environment variable: name, type, default, and what it is for."""

    def __init__(self, name: str, type_: Callable[[str], T], default: T | Callable[[], T] | None, doc: str):
        self.name, self.type, self._default, self.doc = name, type_, default, doc
        REGISTRY[name] = self

    @property
    def default(self) -> T | None:
        """A default may follow another setting (the model name follows the dataset): a function is called."""
        return self._default() if callable(self._default) and not isinstance(self._default, type) else self._default

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name))

    def get(self) -> T | None:
        raw = os.environ.get(self.name)
        if not raw:
            return self.default
        try:
            return self.type(raw)
        except ValueError as exc:
            raise ConfigError(
                f"{self.name}={raw!r} is not a valid {self.type.__name__}", f"fix or unset {self.name}"
            ) from exc

    def __repr__(self) -> str:
        return f"{self.name}={self.get()!r}"


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(value)
    return lowered in ("1", "true", "yes", "on")


_bool.__name__ = "bool (true/false)"


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(value)
        return value

    parse.__name__ = " | ".join(allowed)
    return parse


# --- where things live ---------------------------------------------------------------------------
PROFILE = _Setting("PLATFORM_PROFILE", _choice("local", "cluster"), "local", "local: embedded stack; cluster: K8s")
STATE_DIR = _Setting("PLATFORM_STATE_DIR", Path, REPO_ROOT / ".platform", "Local state: S3 data, DB, logs, PIDs, keys")
LAKE_DIR = _Setting("PLATFORM_LAKE_DIR", str, None, "Data lake root (default <state>/lake; s3a:// on a cluster)")
RAW_PATH = _Setting(
    "PLATFORM_RAW_PATH", str, None,
    "Raw input of a local ETL run (default: the contract's raw server path under the state dir)",
)  # fmt: skip

# --- local stack ports (all explicit, all on 127.0.0.1) -------------------------------------------
HOST = _Setting("PLATFORM_HOST", str, "127.0.0.1", "Address every local server binds to")
S3_PORT = _Setting("PLATFORM_S3_PORT", int, 18333, "SeaweedFS S3 port; its other components use the next ports")
MLFLOW_PORT = _Setting("PLATFORM_MLFLOW_PORT", int, 15000, "MLflow tracking server port")
SERVE_HTTP_PORT = _Setting("PLATFORM_SERVE_HTTP_PORT", int, 18080, "Model server REST (v2) port")
SERVE_GRPC_PORT = _Setting("PLATFORM_SERVE_GRPC_PORT", int, 18081, "Model server gRPC (v2) port")

# --- object store + tracking ----------------------------------------------------------------------
S3_ENDPOINT = _Setting("PLATFORM_S3_ENDPOINT", str, None, "S3 endpoint URL (local: the SeaweedFS S3 port)")
BUCKET = _Setting("PLATFORM_BUCKET", str, "mlops", "Bucket for MLflow artifacts and serving bundles")
TRACKING_URI = _Setting("PLATFORM_TRACKING_URI", str, None, "MLflow tracking URI (local: the started server)")
EXPERIMENT = _Setting(
    "PLATFORM_EXPERIMENT",
    str,
    lambda: f"{DATASET.get()}-xgboost",
    "MLflow experiment of the tuning runs (<dataset>-xgboost)",
)

# --- security + robustness ----------------------------------------------------------------------
MLFLOW_USERNAME = _Setting(
    "MLFLOW_TRACKING_USERNAME", str, None, "MLflow user (local: generated admin, see `task mlflow:credentials`)"
)
MLFLOW_PASSWORD = _Setting(
    "MLFLOW_TRACKING_PASSWORD", str, None, "MLflow password (cluster: from a Secret; local: generated)"
)
SERVE_REPOSITORY_API = _Setting(
    "PLATFORM_SERVE_REPOSITORY_API",
    _bool,
    False,
    "Enable KServe's model load/unload endpoints (off: nobody can unload)",
)
SERVE_MAX_ROWS = _Setting(
    "PLATFORM_SERVE_MAX_ROWS", int, 100_000, "Largest batch (rows) one inference request may carry; larger -> 400"
)  # fmt: skip
SERVE_MAX_REQUEST_MB = _Setting(
    "PLATFORM_SERVE_MAX_REQUEST_MB", int, 64, "Largest inference request body (MiB); larger -> 413 before parsing"
)  # fmt: skip
SERVE_BODY_TIMEOUT_S = _Setting(
    "PLATFORM_SERVE_BODY_TIMEOUT_S", float, 10.0,
    "A request body must arrive within this many seconds; else 408 and the connection is closed",
)  # fmt: skip
SERVE_PREDICTION_LOG_RATE = _Setting(
    "PLATFORM_SERVE_PREDICTION_LOG_RATE", float, 0.0,
    "Share of answered requests written to <state>/logs/predictions-<model>-v<version>.jsonl (0 = off, 1 = all)",
)  # fmt: skip
SERVE_WORKERS = _Setting(
    "PLATFORM_SERVE_WORKERS", int, 1,
    "Server processes per revision, sharing its loopback ports (SO_REUSEPORT); about 310 MB each",
)  # fmt: skip
SERVE_ALLOW_NON_FINITE = _Setting(
    "PLATFORM_SERVE_ALLOW_NON_FINITE", _bool, False,
    "Accept NaN/Inf features (XGBoost reads NaN as 'missing'); off: such rows are rejected with a 400",
)  # fmt: skip
MLFLOW_AUTH_CACHE_S = _Setting(
    "PLATFORM_MLFLOW_AUTH_CACHE_S", int, 300,
    "Seconds MLflow trusts a verified login before hashing it again (0 = every request, ~0.35 s each here)",
)  # fmt: skip
HTTP_TIMEOUT = _Setting("PLATFORM_HTTP_TIMEOUT", int, 20, "Seconds a client waits for MLflow/S3 before giving up")
HTTP_RETRIES = _Setting("PLATFORM_HTTP_RETRIES", int, 2, "Retries of a failed MLflow/S3 call (bounded: fail fast)")
LOG_MAX_MB = _Setting("PLATFORM_LOG_MAX_MB", int, 10, "Size at which a service log under <state>/logs rotates")
LOG_BACKUPS = _Setting("PLATFORM_LOG_BACKUPS", int, 3, "Rotated files kept per service log")

# --- model ----------------------------------------------------------------------------------------
MODEL_NAME = _Setting(
    "PLATFORM_MODEL_NAME", str, lambda: f"{DATASET.get()}-xgboost",
    "Registered model name = served model name (<dataset>-xgboost)",
)  # fmt: skip
RAY_ADDRESS = _Setting("PLATFORM_RAY_ADDRESS", str, "local", "Ray cluster address; `local` starts Ray in-process")

# --- search, gate, notebook (ml_platform) ---------------------------------------------------------
SEARCH_CONFIG = _Setting(
    "PLATFORM_SEARCH_CONFIG", Path, REPO_ROOT / "ml_platform" / "search.yaml", "Search space, metric, budget (YAML)"
)
TUNE_SAMPLES = _Setting("PLATFORM_TUNE_SAMPLES", int, None, "Trials per search (overrides budget.samples)")
TUNE_MAX_ROUNDS = _Setting("PLATFORM_TUNE_MAX_ROUNDS", int, None, "Max boosting rounds (overrides budget.max_rounds)")
SEED = _Setting("PLATFORM_SEED", int, None, "Seed of the search (overrides the search config's seed)")
KFP_HOST = _Setting(
    "PLATFORM_KFP_HOST", str, None, "Kubeflow Pipelines API for `task pipeline:submit` (e.g. a port-forward)"
)
DEMO_SECOND_SEED = _Setting(
    "PLATFORM_DEMO_SECOND_SEED", int, 44,
    "Seed of the demo's second (canary) search; 44 gives a challenger that beats the shipped demo's first model on "
    "iris (the gate still decides: with another seed the demo may end with the first model serving)",
)  # fmt: skip
GATE_CONFIG = _Setting(
    "PLATFORM_GATE_CONFIG", Path, REPO_ROOT / "ml_platform" / "gate.yaml", "Champion/challenger rules (YAML)"
)
NOTEBOOK_PORT = _Setting("PLATFORM_NOTEBOOK_PORT", int, None, "JupyterLab port of `task notebook` (default: free)")

# --- serving revisions and canary rollout (inference_service) -------------------------------------
K8S_NAMESPACE = _Setting(
    "PLATFORM_K8S_NAMESPACE", str, "ml-platform", "Namespace of the platform's workloads on a cluster"
)
SERVE_SERVICE_ACCOUNT = _Setting(
    "PLATFORM_SERVE_SERVICE_ACCOUNT", str, "kserve-s3", "Service account of the InferenceService (S3 credentials)"
)  # fmt: skip
SERVE_RUNTIME = _Setting(
    "PLATFORM_SERVE_RUNTIME", str, "platform-xgboost", "KServe ServingRuntime of the predictor (manifests/serving/)"
)  # fmt: skip
SERVE_CPU = _Setting(
    "PLATFORM_SERVE_CPU", str, "500m", "CPU request (limit: twice) of a predictor replica on a cluster"
)
SERVE_MEMORY = _Setting("PLATFORM_SERVE_MEMORY", str, "1Gi", "Memory request = limit of a predictor replica")
SERVE_MIN_REPLICAS = _Setting("PLATFORM_SERVE_MIN_REPLICAS", int, 1, "Fewest predictor replicas per revision")
SERVE_MAX_REPLICAS = _Setting("PLATFORM_SERVE_MAX_REPLICAS", int, 3, "Most predictor replicas per revision")
SERVE_FAULTS = _Setting(
    "PLATFORM_SERVE_FAULTS", str, "",
    "Fault injection into a revision to rehearse a bad rollout, e.g. `error_rate=0.3,delay_ms=200` (empty = off)",
)  # fmt: skip
CANARY_STEPS = _Setting("PLATFORM_CANARY_STEPS", str, "10,25,50", "Canary weights `canary auto` walks through (%)")
CANARY_MAX_WEIGHT = _Setting("PLATFORM_CANARY_MAX_WEIGHT", int, 50, "Last weight analysed before promotion (%)")
CANARY_INTERVAL_S = _Setting("PLATFORM_CANARY_INTERVAL_S", float, 2.0, "Seconds of traffic analysed per step")
CANARY_THRESHOLD = _Setting("PLATFORM_CANARY_THRESHOLD", int, 2, "Failed checks before `canary auto` rolls back")
CANARY_MIN_REQUESTS = _Setting(
    "PLATFORM_CANARY_MIN_REQUESTS", int, 30,
    "Requests each revision must answer per step; below it `canary auto` sends its own loopback load",
)  # fmt: skip
CANARY_MIN_SUCCESS = _Setting("PLATFORM_CANARY_MIN_SUCCESS", float, 0.99, "Lowest canary success rate (non-5xx share)")
CANARY_MAX_LATENCY_RATIO = _Setting(
    "PLATFORM_CANARY_MAX_LATENCY_RATIO", float, 2.0, "Highest canary p95 / stable p95 (plus the slack below)"
)  # fmt: skip
CANARY_LATENCY_SLACK_MS = _Setting(
    "PLATFORM_CANARY_LATENCY_SLACK_MS", float, 25.0, "Canary p95 may exceed the ratio by this much (histogram buckets)"
)  # fmt: skip
CANARY_MAX_PSI = _Setting(
    "PLATFORM_CANARY_MAX_PSI", float, 0.2, "Highest population stability index of the predicted class, canary vs stable"
)  # fmt: skip
CANARY_DRAIN_S = _Setting("PLATFORM_CANARY_DRAIN_S", float, 2.0, "Seconds a revision drains after losing its traffic")
CANARY_WAIT_S = _Setting(
    "PLATFORM_CANARY_WAIT_S", float, 300.0, "Seconds a cluster command waits for the traffic it asked for"
)  # fmt: skip
PROMETHEUS_URL = _Setting(
    "PLATFORM_PROMETHEUS_URL", str, "http://prometheus-operated.monitoring.svc:9090",
    "Prometheus the cluster's canary analysis queries (revisions' platform_revision_* series)",
)  # fmt: skip

# --- datasets (contracts, ETL, splits, lake versions) ---------------------------------------------
DATASET = _Setting("PLATFORM_DATASET", str, "iris", "Dataset name = contract <contracts dir>/<name>.yaml")
CONTRACTS_DIR = _Setting("PLATFORM_CONTRACTS_DIR", Path, REPO_ROOT / "contracts", "Where dataset contracts live")
SPLIT_VALID = _Setting("PLATFORM_SPLIT_VALID", float, 0.15, "Share of rows in the validation split (row-key hash)")
SPLIT_TEST = _Setting("PLATFORM_SPLIT_TEST", float, 0.15, "Share of rows in the test split (row-key hash)")
SPARK_MASTER = _Setting("PLATFORM_SPARK_MASTER", str, "local[*]", "Spark master of a local ETL run")
SPARK_PARTITION_MB = _Setting(
    "PLATFORM_SPARK_PARTITION_MB", int, 64,
    "Raw input per ETL shuffle partition (at least 4): 4 partitions ran out of a 2g heap at 10M rows (1.5 GB)",
)  # fmt: skip
SPARK_DRIVER_MEMORY = _Setting("PLATFORM_SPARK_DRIVER_MEMORY", str, "2g", "Heap of a local ETL run (driver = executor)")
SPARK_SERVER = _Setting(
    "PLATFORM_SPARK_SERVER", _bool, False,
    "Local runs use one long-lived Spark Connect server (127.0.0.1, token in the state dir) instead of a JVM per "
    "process: later runs skip the JVM start and its JIT warm-up; `platform down` stops it",
)  # fmt: skip
SPARK_SERVER_PORT = _Setting(
    "PLATFORM_SPARK_SERVER_PORT", int, 15002, "Port of that server on 127.0.0.1 (taken by another process: a free one)"
)
JVM_CACHE_DIR = _Setting(
    "PLATFORM_JVM_CACHE_DIR", str,
    lambda: str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kfserve-bundle" / "jvm"),
    "Per-user cache of the Spark JVM's class archive (built by ./setup-env; 'off': none)",
)  # fmt: skip
IMAGE = _Setting(
    "PLATFORM_IMAGE", str, "ghcr.io/kfserve-bundle/platform:0.1.0", "Platform image: pipeline components, RayJob"
)
SERVING_IMAGE = _Setting(
    "PLATFORM_SERVING_IMAGE", str, "ghcr.io/kfserve-bundle/serving:0.1.0", "ServingRuntime image (pinned tag)"
)
MLFLOW_IMAGE = _Setting("PLATFORM_MLFLOW_IMAGE", str, "ghcr.io/mlflow/mlflow:v3.17.2-full", "MLflow server image")
KFP_NAMESPACE = _Setting(
    "PLATFORM_KFP_NAMESPACE", str, "kubeflow", "Where Kubeflow Pipelines runs the tasks (standalone KFP's namespace)"
)
SPARK_IMAGE = _Setting(
    "PLATFORM_SPARK_IMAGE", str, "ghcr.io/kfserve-bundle/platform-spark:0.1.0", "ETL image on the cluster (pinned tag)"
)
K8S_LAKE = _Setting("PLATFORM_K8S_LAKE", str, "s3a://mlops/lake", "Lake root of the cluster ETL")
K8S_RAW_PATH = _Setting(
    "PLATFORM_K8S_RAW_PATH", str, None,
    "Raw input of the cluster ETL (default: the contract's raw server, its path under the bucket)",
)  # fmt: skip
K8S_S3_HOST = _Setting(
    "PLATFORM_K8S_S3_HOST", str, None, "S3 host on a cluster: derived from PLATFORM_S3_ENDPOINT by components/wiring"
)
K8S_S3_PORT = _Setting("PLATFORM_K8S_S3_PORT", int, 443, "S3 port the cluster ETL uses (443: TLS)")


def profile() -> str:
    return PROFILE.get()


def state_dir() -> Path:
    return Path(STATE_DIR.get()).resolve()


def lake_dir() -> str:
    return LAKE_DIR.get() or str(state_dir() / "lake")


def raw_path() -> str:
    return RAW_PATH.get() or str(state_dir() / "raw" / f"{DATASET.get()}.data")


def s3_endpoint() -> str:
    if S3_ENDPOINT.is_set():
        return S3_ENDPOINT.get()
    if profile() == "local":
        return f"http://{HOST.get()}:{S3_PORT.get()}"
    raise ConfigError("no S3 endpoint for the cluster profile", "set PLATFORM_S3_ENDPOINT")


def tracking_uri() -> str:
    if TRACKING_URI.is_set():
        return TRACKING_URI.get()
    if profile() == "local":
        return f"http://{HOST.get()}:{MLFLOW_PORT.get()}"
    raise ConfigError("no MLflow tracking URI for the cluster profile", "set PLATFORM_TRACKING_URI")


def serve_url() -> str:
    return f"http://{HOST.get()}:{SERVE_HTTP_PORT.get()}"


def keys_file() -> Path:
    """Local S3 identities (generated by `platform up`; lives in the ignored state dir)."""
    return state_dir() / "secrets" / "s3-identities.json"


def s3_credentials() -> tuple[str, str]:
    """Access key pair: from AWS_* env vars if set, else (local profile) the generated local keys."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret
    if profile() == "local" and keys_file().exists():
        cred = json.loads(keys_file().read_text())["identities"][0]["credentials"][0]
        return cred["accessKey"], cred["secretKey"]
    raise ConfigError("no S3 credentials", "run `task up` (local) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")


def mlflow_credentials_file() -> Path:
    """Local MLflow admin login (generated by `platform up`; lives in the ignored state dir)."""
    return state_dir() / "secrets" / "mlflow-admin.json"


def mlflow_credentials() -> tuple[str, str]:
    """MLflow login: MLFLOW_TRACKING_USERNAME/PASSWORD if set, else (local profile) the generated admin."""
    user, password = MLFLOW_USERNAME.get(), MLFLOW_PASSWORD.get()
    if user and password:
        return user, password
    if profile() == "local" and mlflow_credentials_file().exists():
        cred = json.loads(mlflow_credentials_file().read_text())
        return cred["username"], cred["password"]
    raise ConfigError(
        "no MLflow credentials", "run `task up` (local) or set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
    )


def spark_server_file() -> Path:
    """Host, port, token (0600) and pid of the long-lived local Spark Connect server (PLATFORM_SPARK_SERVER), as
    pyspark's reuse path records them; its start-up log and pid file sit beside it."""
    return state_dir() / "run" / "spark-connect" / "server.json"


def notebook_file() -> Path:
    """Port, token and URL of the local JupyterLab (`task notebook`); lives in the ignored state dir."""
    return state_dir() / "secrets" / "notebook.json"


def retry_env() -> dict[str, str]:
    """Bounded retries and timeouts for every MLflow and boto3 client, so a lost backend fails fast."""
    retries, timeout = HTTP_RETRIES.get(), HTTP_TIMEOUT.get()
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
        "AWS_MAX_ATTEMPTS": str(retries + 1),
        "AWS_RETRY_MODE": "standard",
    }


def client_env() -> dict[str, str]:
    """Environment that lets MLflow, boto3, Ray and KServe storage reach the object store and the tracking server."""
    key, secret = s3_credentials()
    user, password = mlflow_credentials()
    return {
        **retry_env(),
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_ENDPOINT_URL": s3_endpoint(),
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint(),
        "MLFLOW_TRACKING_URI": tracking_uri(),
    }


def apply_client_env() -> None:
    """Export client_env() into this process, so every library reads the same endpoints and keys."""
    os.environ.update(client_env())


def describe() -> list[tuple[str, str, str]]:
    """(name, current value, doc) of every setting, for `platform settings`."""
    return [(s.name, str(s.get()), s.doc) for s in REGISTRY.values()]
