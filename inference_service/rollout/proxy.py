"""The local traffic splitter: one Caddy in front of every served model's revisions, on the public serving ports.

Routing, as KServe's ingress routes many InferenceServices:
- by the KServe host form, REST and gRPC alike: `Host` / `:authority` `<name>.localhost` reaches model <name>;
  `latest-<name>.localhost` / `prev-<name>.localhost` its canary / its stable revision (tag routing);
- REST by path: `/v2/models/<name>/…` reaches model <name>; another name under `/v2/models/` is a 404 `{"error"}`;
  `GET /v2/models` answers the index of the served models (`{"models": [...]}`, KServe's list response);
- a request that names no model (gRPC without such an authority: a gRPC method path is the same for every model
  and the model name sits in the protobuf body, which a proxy cannot route on; REST `/v2`, `/v2/health/*`) goes
  to the default model: PLATFORM_MODEL_NAME when it is served, else the first one served.
Inside a model, a request goes to the canary when its random `{http.request.uuid}` (or its `X-Platform-Route-Key`
header, when sent: the same key always lands on the same side) sorts below the model's threshold, so the
canary's share is the InferenceService's percentage.

Nothing of this reloads Caddy. Its config has a fixed number of slots (SLOTS); a slot is a directory of small
files Caddy reads per request: which model it holds (files named by the model's path segment and host names,
found by Caddy's `file` matcher, one stat per slot), the addresses of the model's two revisions, `canary` and
`stable` (`{file./abs/path}` in the dial), and the canary's threshold (a CEL matcher). Serving another model
fills a free slot, a weight change rewrites a threshold or an address, the default model is a symlink to its
slot; each change is an atomic write-then-rename. Why not Caddy's admin API: every admin change, a PATCH of
only the weights included, is a full reload that closes idle keep-alive connections and replaces the listener,
and a client that has just sent a request on one gets EOF (measured: 3-4 failed requests per change). The
admin API (`POST /load`, on a unix socket in the state dir, 0600; no TCP admin port) is used only when this
module's config shape itself changes (an upgrade), and at the first start.

A connection refused by a revision (it died) is retried on the model's other slot and the dead one is skipped
for a while, so callers see no error while the canary analysis notices the loss on its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from platform_core import settings
from platform_core.errors import PlatformError
from platform_core.private_files import write_private
from platform_core.stack import SERVING_PROXY as PROXY

SLOTS = 8  # models served side by side; each one is a few file stats per request, and ~310 MB of revision
KINDS = ("rest", "grpc")
ROUTE_KEY = "X-Platform-Route-Key"
MATCH_DIRS = ("models", "hosts", "latest", "prev")  # what a slot's model answers to: path, host, tag hosts
DEFAULT = "default"  # symlink to the default model's slot


@dataclass(frozen=True)
class Upstream:
    revision: str
    http_port: int
    grpc_port: int


def admin_socket() -> Path:
    return settings.state_dir() / "run" / "caddy-admin.sock"


def tag_host(tag: str, model_name: str) -> str:
    return f"{tag}-{model_name}.localhost"


def model_host(model_name: str) -> str:
    """KServe's host form of an InferenceService, locally: `<name>.localhost`."""
    return f"{model_name}.localhost"


def routes_dir() -> Path:
    return settings.state_dir() / "serving" / "routes"


def _slot(index: int) -> Path:
    return routes_dir() / f"slot-{index}"


def threshold(percent: int) -> str:
    """The string a request's UUID must sort below to go to the canary: `percent`% of random UUIDs do. "0" sorts
    before every UUID, "g" after every hex digit."""
    if percent <= 0:
        return "0"
    if percent >= 100:
        return "g"
    return f"{percent * 2**32 // 100:08x}"


# --- the config: its shape only, the same whatever is served -------------------------------------------------


def config() -> dict[str, Any]:
    """Caddy's JSON config: the slots' routes for REST and gRPC; what each slot holds is files (`publish`)."""

    def server(port: int, kind: str) -> dict[str, Any]:
        srv: dict[str, Any] = {"listen": [f"{settings.HOST.get()}:{port}"], "automatic_https": {"disable": True},
                               "routes": _routes(kind)}  # fmt: skip
        # gRPC without TLS = HTTP/2 cleartext; REST has no TLS here, so no h2/h3 (Caddy would warn about them).
        srv["protocols"] = ["h1", "h2c"] if kind == "grpc" else ["h1"]
        return srv

    return {
        # No autosave of live changes to ~/.config/caddy: the specs in the state dir are the only record.
        "admin": {"listen": f"unix/{admin_socket()}|0600", "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(settings.state_dir() / "caddy")},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {
            "http": {
                "servers": {
                    "rest": server(settings.SERVE_HTTP_PORT.get(), "rest"),
                    "grpc": server(settings.SERVE_GRPC_PORT.get(), "grpc"),
                }
            }
        },
    }


def _routes(kind: str) -> list[dict[str, Any]]:
    slots = [_slot(i) for i in range(SLOTS)]
    by_host = []
    for slot in slots:
        by_host += [_route(_file_match(slot / "latest", "{http.request.host}"), _proxy(kind, slot, ["canary"])),
                    _route(_file_match(slot / "prev", "{http.request.host}"), _proxy(kind, slot, ["stable"])),
                    _route(_file_match(slot / "hosts", "{http.request.host}"), _split(kind, slot))]  # fmt: skip
    routes = [{"match": [{"host": ["*.localhost"]}], "handle": [{"handler": "subroute", "routes": by_host}]}]
    if kind == "rest":
        # The API docs and the metrics stay on each revision's own port: the public port serves the v2 API.
        internal = {
            "error": "not served on the public port: the API docs and /metrics are on each revision's own "
            "port (`task canary:status` reads them)"
        }
        routes.insert(0, _route({"path": list(INTERNAL_PATHS)}, _static(404, json.dumps(internal))))
        by_path = [_route(_file_match(slot / "models", "{http.request.uri.path.2}"), _split(kind, slot))
                   for slot in slots]  # fmt: skip
        not_served = {"error": "no model of that name is served here; GET /v2/models lists the served ones"}
        routes += [
            _route({"method": ["GET"], "path": ["/v2/models", "/v2/models/"]},
                   _static(200, f"{{file.{routes_dir() / 'index.json'}}}")),
            _route({"path": ["/v2/models/*"]},
                   {"handler": "subroute", "routes": [*by_path, {"handle": [_static(404, json.dumps(not_served))]}]}),
        ]  # fmt: skip
    nothing = {"error": "no model is served; run `task serve`"}
    none = {"not": [_file_match(routes_dir(), f"{DEFAULT}/{kind}-stable.addr")]}
    routes += [_route(none, _static(503, json.dumps(nothing))), {"handle": [_split(kind, routes_dir() / DEFAULT)]}]
    return routes


# Local Prometheus-style readers (the analysis, `canary:status`, the serve notebook) scrape each revision's own
# port, as Prometheus scrapes predictor pods on a cluster.
INTERNAL_PATHS = ("/metrics", "/metrics/*", "/openapi.json", "/docs", "/docs/*", "/redoc", "/redoc/*")


def _route(match: dict[str, Any], handler: dict[str, Any]) -> dict[str, Any]:
    return {"match": [match], "handle": [handler], "terminal": True}


def _file_match(root: Path, name: str) -> dict[str, Any]:
    """Matches when `root/<name>` exists (a stat; Caddy cleans the name, so it cannot leave `root`)."""
    return {"file": {"root": str(root), "try_files": [name]}}


def _split(kind: str, slot: Path) -> dict[str, Any]:
    ratio = slot / "canary.threshold"
    key = f'ph(req, "http.request.header.{ROUTE_KEY}")'
    draw = f'({key} != "" ? {key} : ph(req, "http.request.uuid"))'
    # Without the `!= null` guard a missing file would make every request a 500; missing = all to the stable.
    split = f'ph(req, "file.{ratio}") != null && {draw} < ph(req, "file.{ratio}")'
    return {"handler": "subroute", "routes": [_route({"expression": split}, _proxy(kind, slot, ["canary", "stable"])),
                                              {"handle": [_proxy(kind, slot, ["stable", "canary"])]}]}  # fmt: skip


def _proxy(kind: str, slot: Path, order: list[str]) -> dict[str, Any]:
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"{{file.{slot / f'{kind}-{side}.addr'}}}"} for side in order],
        "load_balancing": {
            # The first slot that is up; the other when it refused (a dead revision).
            "selection_policy": {"policy": "first"},
            # Retried only when the revision refused the connection (nothing was sent): safe for POST.
            "retries": 2,
            "try_interval": "20ms",
        },
        # One refused connection marks a slot down for 5 s: the rest of the traffic takes the other one.
        "health_checks": {"passive": {"fail_duration": "5s", "max_fails": 1}},
    }
    if kind == "grpc":
        handler["transport"] = {"protocol": "http", "versions": ["h2c"]}
    else:
        # A revision answers a stalled body with 408 and `Connection: close`, a hop-by-hop header the proxy drops;
        # without it Go's server waits for the rest of the body (to keep the client's connection) and the 408
        # never leaves: measured, no answer after 40 s with keep-alive. Closing lets it out at once.
        handler["handle_response"] = [
            {
                "match": {"status_code": [408]},
                "routes": [
                    {
                        "handle": [
                            {"handler": "headers", "response": {"set": {"Connection": ["close"]}}},
                            {"handler": "copy_response"},
                        ]
                    }
                ],
            }
        ]
    return handler


def _static(status: int, body: str) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": status,
            "headers": {"Content-Type": ["application/json"]}, "body": body}  # fmt: skip


# --- what is served: files, rewritten atomically -------------------------------------------------------------


@contextmanager
def locked() -> Iterator[None]:
    """One writer of the routing at a time (rollouts of different models run side by side)."""
    path = settings.state_dir() / "serving" / ".proxy.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write(path: Path, text: str) -> None:
    """Atomic for Caddy's per-request reads: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def reset() -> None:
    """Empty slots, no default, an empty index: where a (re)started proxy begins, before models are published."""
    shutil.rmtree(routes_dir(), ignore_errors=True)
    for index in range(SLOTS):
        for sub in MATCH_DIRS:
            (_slot(index) / sub).mkdir(parents=True)
    _write(routes_dir() / "index.json", json.dumps({"models": []}))


def served() -> dict[str, Path]:
    """Model -> its slot, in slot order."""
    found = {}
    for index in range(SLOTS):
        try:
            found[(_slot(index) / "model").read_text()] = _slot(index)
        except FileNotFoundError:
            continue
    return found


def _slot_for(model_name: str) -> Path:
    slots = served()
    if model_name in slots:
        return slots[model_name]
    free = next((_slot(i) for i in range(SLOTS) if not (_slot(i) / "model").exists()), None)
    if free is None:
        raise PlatformError(f"{SLOTS} models are served here already: {', '.join(slots)}",
                            "stop serving (`task down`) before serving another model")  # fmt: skip
    for sub in MATCH_DIRS:
        (free / sub).mkdir(parents=True, exist_ok=True)
    return free


def publish(model_name: str, canary: Upstream, stable: Upstream, percent: int) -> None:
    """Route `model_name` to these revisions, `percent`% to the canary: a weight change, or a new model in a free
    slot (it answers to its path and host names only once its addresses are written)."""
    slot = _slot_for(model_name)
    host = settings.HOST.get()
    addresses = {(kind, side): f"{host}:{up.http_port if kind == 'rest' else up.grpc_port}"
                 for side, up in (("canary", canary), ("stable", stable)) for kind in KINDS}  # fmt: skip
    # Less canary: the share moves first, then the slots; more: the slots first. Either way a request only
    # reaches a revision that is still running (a left one drains before it stops).
    if percent == 0:
        _write(slot / "canary.threshold", threshold(0))
    for (kind, side), address in addresses.items():
        _write(slot / f"{kind}-{side}.addr", address)
    if percent > 0:
        _write(slot / "canary.threshold", threshold(percent))
    if not (slot / "model").exists():
        _write(slot / "model", model_name)
        names = {"models": model_name, "hosts": model_host(model_name), "latest": tag_host("latest", model_name),
                 "prev": tag_host("prev", model_name)}  # fmt: skip
        for sub, name in names.items():
            (slot / sub / name).touch()


def _refresh(preferred: str) -> None:
    """The index `GET /v2/models` answers, and the default model: `preferred` when served, else the one the
    default already is, else the first slot's."""
    slots = served()
    _write(routes_dir() / "index.json", json.dumps({"models": sorted(slots)}))
    link = routes_dir() / DEFAULT
    current = os.readlink(link) if link.is_symlink() else None
    keep = [p.name for m, p in slots.items() if m == preferred] or [p.name for p in slots.values() if p.name == current]
    target = keep[0] if keep else next((p.name for p in slots.values()), None)
    if target is None or target == current:
        return
    tmp = routes_dir() / f".{DEFAULT}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


def default_model() -> str | None:
    try:
        return (routes_dir() / DEFAULT / "model").read_text()
    except FileNotFoundError:
        return None


# --- the process ---------------------------------------------------------------------------------------------


def _caddy() -> str:
    local = Path(sys.executable).parent / "caddy"
    if not local.exists():
        raise PlatformError("caddy is not installed in the venv", "run ./setup-env")
    return str(local)


def _admin() -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(admin_socket())), base_url="http://caddy", timeout=10)


def running() -> bool:
    return PROXY.pid() is not None


def ensure_running(preferred_default: str) -> None:
    """Start the proxy on the published routing, or, when it runs, only refresh the index and the default (files);
    a config of another shape (this module changed) is loaded through the admin API."""
    _refresh(preferred_default)
    cfg = config()
    path = settings.state_dir() / "serving" / "caddy.json"
    if PROXY.pid() is None:
        admin_socket().parent.mkdir(parents=True, exist_ok=True)
        admin_socket().unlink(missing_ok=True)  # left by a killed proxy; Caddy will not bind over it
        write_private(path, json.dumps(cfg, indent=1))  # 0600 from the start, not chmod-ed after writing
        home = str(settings.state_dir() / "caddy")  # Caddy's data and config dirs: in the state dir, not ~
        PROXY.start([_caddy(), "run", "--config", str(path)], env={"XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home})
        PROXY.wait_ready(lambda: _admin().get("/config/").status_code == 200, timeout=30, what="the serving proxy")
        return
    if path.exists() and json.loads(path.read_text()) == cfg:
        return  # same shape: the files were the whole change
    with _admin() as admin:
        answer = admin.post("/load", json=cfg)
    if answer.status_code != 200:
        raise PlatformError(f"the serving proxy refused its new config: {answer.text.strip()}", f"see {PROXY.log_file}")
    write_private(path, json.dumps(cfg, indent=1))


def stop() -> bool:
    stopped = PROXY.stop()
    admin_socket().unlink(missing_ok=True)
    shutil.rmtree(routes_dir(), ignore_errors=True)  # nothing is routed without a proxy
    return stopped
