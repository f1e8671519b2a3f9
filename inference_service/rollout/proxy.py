"""The local traffic splitter: Caddy in front of the revisions, on the public serving ports.

REST (`PLATFORM_SERVE_HTTP_PORT`) and gRPC over h2c (`PLATFORM_SERVE_GRPC_PORT`) are each one Caddy server with
two slots, `canary` and `stable`, whose upstream addresses Caddy reads per request from files in the state dir
(`{file./abs/path}` in the dial). A request goes to the canary slot when its random `{http.request.uuid}` sorts
below a threshold read from another file (a CEL matcher), so the share of the canary is the InferenceService's
percentage, drawn per request. Host `latest-<name>.localhost` / `prev-<name>.localhost` reaches one slot directly,
as KServe's tag routing does. A connection refused by a revision (it died) is retried on the other slot and the
dead one is skipped for a while, so callers see no error while the canary analysis notices the loss on its own.

Why files and not Caddy's admin API for weights: every admin change, a PATCH of only the weights included, is a
full reload that closes idle keep-alive connections and replaces the listener, and a client that has just sent a
request on one gets EOF (measured: 3-4 failed requests per weight change). A weight change here is an atomic
rewrite of small files (write, then rename): no reload, nothing dropped. Only a new shape of config (the first
start, another model, no revision at all) goes through the admin API (`POST /load`) on a unix socket in the
state dir, created 0600; there is no TCP admin port.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
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


def routes_dir() -> Path:
    return settings.state_dir() / "serving" / "routes"


def _addr_file(kind: str, slot: str) -> Path:
    return routes_dir() / f"{kind}-{slot}.addr"


def _threshold_file() -> Path:
    return routes_dir() / "canary.threshold"


def threshold(percent: int) -> str:
    """The string a request's UUID must sort below to go to the canary: `percent`% of random UUIDs do. "0" sorts
    before every UUID, "g" after every hex digit."""
    if percent <= 0:
        return "0"
    if percent >= 100:
        return "g"
    return f"{percent * 2**32 // 100:08x}"


def config(model_name: str, live: bool = True) -> dict[str, Any]:
    """Caddy's JSON config: its shape only (tag routes, the two slots, the split matcher), the same for REST and
    gRPC; which revision a slot reaches and the canary's share are the files `write_routing` writes."""
    host = settings.HOST.get()
    ratio = _threshold_file()
    # Without the `!= null` guard a missing file would make every request a 500; missing = all to the stable.
    split = f'ph(req, "file.{ratio}") != null && {{http.request.uuid}} < ph(req, "file.{ratio}")'

    def server(port: int, kind: str) -> dict[str, Any]:
        if not live:
            routes = [{"handle": [_unavailable()]}]
        else:
            routes = [
                {"match": [{"host": [tag_host("latest", model_name)]}], "handle": [_proxy(kind, ["canary"])],
                 "terminal": True},
                {"match": [{"host": [tag_host("prev", model_name)]}], "handle": [_proxy(kind, ["stable"])],
                 "terminal": True},
                {"match": [{"expression": split}], "handle": [_proxy(kind, ["canary", "stable"])], "terminal": True},
                {"handle": [_proxy(kind, ["stable", "canary"])]},
            ]  # fmt: skip
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


def _proxy(kind: str, slots: list[str]) -> dict[str, Any]:
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"{{file.{_addr_file(kind, slot)}}}"} for slot in slots],
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
    return handler


def _write(path: Path, text: str) -> None:
    """Atomic for Caddy's per-request reads: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_routing(canary: Upstream, stable: Upstream, percent: int) -> None:
    """Point the slots at these revisions and give the canary `percent`%: what a weight change is."""
    routes_dir().mkdir(parents=True, exist_ok=True)
    host = settings.HOST.get()
    addresses = {(kind, slot): f"{host}:{up.http_port if kind == 'rest' else up.grpc_port}"
                 for slot, up in (("canary", canary), ("stable", stable)) for kind in ("rest", "grpc")}  # fmt: skip
    # Less canary: the share moves first, then the slots; more: the slots first. Either way a request only
    # reaches a revision that is still running (a left one drains before it stops).
    if percent == 0:
        _write(_threshold_file(), threshold(0))
    for (kind, slot), address in addresses.items():
        _write(_addr_file(kind, slot), address)
    if percent > 0:
        _write(_threshold_file(), threshold(percent))


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
    """Route to this split: `split` is the revisions with their percentages; `tags` (during a canary) names the
    `latest` (canary) and `prev` (stable) ones. Starts the proxy, or changes its routing without a reload."""
    live = [u for u in split if u.weight > 0]
    if live:
        canary = tags.get("latest", live[0])
        stable = tags.get("prev", live[-1])
        write_routing(canary, stable, canary.weight if canary != stable else 0)
    cfg = config(model_name, live=bool(live))
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
        return  # same shape: the files above were the whole change
    with _admin() as admin:
        answer = admin.post("/load", json=cfg)
    if answer.status_code != 200:
        raise PlatformError(f"the serving proxy refused its new config: {answer.text.strip()}", f"see {PROXY.log_file}")
    write_private(path, json.dumps(cfg, indent=1))


def stop() -> bool:
    stopped = PROXY.stop()
    admin_socket().unlink(missing_ok=True)
    return stopped
