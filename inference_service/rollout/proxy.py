"""The local traffic splitter: Caddy in front of the revisions, on the public serving ports.

REST (`PLATFORM_SERVE_HTTP_PORT`) and gRPC over h2c (`PLATFORM_SERVE_GRPC_PORT`) are each one Caddy server with
a `reverse_proxy` whose `weighted_round_robin` weights are the InferenceService's traffic percentages. Host
`latest-<name>.localhost` / `prev-<name>.localhost` reaches one revision directly, as KServe's tag routing does.
A connection refused by a revision (it died) is retried on another and the dead one is skipped for a while,
so callers see no error while the canary analysis notices the loss on its own.

Config changes go through Caddy's admin API (`POST /load`, graceful: open connections finish on the old
config) on a unix socket in the state dir, created 0600; there is no TCP admin port.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import httpx

from platform_core import settings
from platform_core.errors import PlatformError
from platform_core.private_files import write_private
from platform_core.stack import SERVING_PROXY as PROXY


@dataclass(frozen=True)
class Upstream:
    revision: str
    http_port: int
    grpc_port: int
    weight: int  # traffic percent


def admin_socket() -> Path:
    return settings.state_dir() / "run" / "caddy-admin.sock"


def tag_host(tag: str, model_name: str) -> str:
    return f"{tag}-{model_name}.localhost"


def config(model_name: str, split: list[Upstream], tags: dict[str, Upstream]) -> dict[str, Any]:
    """Caddy's JSON config: the split for plain requests, one route per tag, the same for REST and gRPC."""
    host = settings.HOST.get()

    def server(port: int, kind: str) -> dict[str, Any]:
        routes = [
            {"match": [{"host": [tag_host(tag, model_name)]}], "handle": [_proxy([up], kind)], "terminal": True}
            for tag, up in sorted(tags.items())
        ]
        live = [u for u in split if u.weight > 0]
        routes.append({"handle": [_proxy(live, kind) if live else _unavailable()]})
        srv: dict[str, Any] = {"listen": [f"{host}:{port}"], "automatic_https": {"disable": True}, "routes": routes}
        if kind == "grpc":
            srv["protocols"] = ["h1", "h2c"]  # gRPC without TLS = HTTP/2 cleartext
        else:
            srv["protocols"] = ["h1"]  # no TLS here, so no h2/h3 (Caddy would warn about skipping them)
        return srv

    return {
        # No autosave of live changes to ~/.config/caddy: the spec in the state dir is the only record.
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


def _proxy(upstreams: list[Upstream], kind: str) -> dict[str, Any]:
    host = settings.HOST.get()
    port = (lambda u: u.http_port) if kind == "rest" else (lambda u: u.grpc_port)
    divisor = reduce(math.gcd, [u.weight for u in upstreams]) or 1
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"{host}:{port(u)}"} for u in upstreams],
        "load_balancing": {
            "selection_policy": {"policy": "weighted_round_robin", "weights": [u.weight // divisor for u in upstreams]},
            # Retried only when the revision refused the connection (nothing was sent): safe for POST.
            "retries": 2,
            "try_interval": "20ms",
        },
        # One refused connection marks a revision down for 5 s: the rest of the traffic skips it.
        "health_checks": {"passive": {"fail_duration": "5s", "max_fails": 1}},
    }
    if kind == "grpc":
        handler["transport"] = {"protocol": "http", "versions": ["h2c"]}
    return handler


def _unavailable() -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": 503,
        "headers": {"Content-Type": ["application/json"]},
        "body": json.dumps({"error": "no revision is serving; run `task serve`"}),
    }


def _caddy() -> str:
    local = Path(sys.executable).parent / "caddy"
    if not local.exists():
        raise PlatformError("caddy is not installed in the venv", "run ./setup-env")
    return str(local)


def _admin() -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(admin_socket())), base_url="http://caddy", timeout=10)


def apply(model_name: str, split: list[Upstream], tags: dict[str, Upstream]) -> None:
    """Start the proxy with this routing, or change the running proxy's routing without dropping connections."""
    cfg = config(model_name, split, tags)
    if PROXY.pid() is None:
        path = settings.state_dir() / "serving" / "caddy.json"
        admin_socket().parent.mkdir(parents=True, exist_ok=True)
        admin_socket().unlink(missing_ok=True)  # left by a killed proxy; Caddy will not bind over it
        write_private(path, json.dumps(cfg, indent=1))  # 0600 from the start, not chmod-ed after writing
        home = str(settings.state_dir() / "caddy")  # Caddy's data and config dirs: in the state dir, not ~
        PROXY.start([_caddy(), "run", "--config", str(path)], env={"XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home})
        PROXY.wait_ready(lambda: _admin().get("/config/").status_code == 200, timeout=30, what="the serving proxy")
        return
    with _admin() as admin:
        answer = admin.post("/load", json=cfg)
    if answer.status_code != 200:
        raise PlatformError(f"the serving proxy refused its new config: {answer.text.strip()}", f"see {PROXY.log_file}")


def stop() -> bool:
    stopped = PROXY.stop()
    admin_socket().unlink(missing_ok=True)
    return stopped
