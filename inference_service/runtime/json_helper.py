"""Large JSON request bodies are parsed in a helper process, not in the server.

orjson's parse and numpy's list-to-array conversion each hold the GIL for the whole call: for a 1M-row request
(22 MB of JSON) that is ~0.4 s + ~0.16 s here, during which the server's event loop, and with it liveness and
every small request, waits. A helper process (`python -m inference_service.runtime.json_helper`, started on the first
large body, one per server process) does both and sends back the parsed request with its numeric tensors as
arrays; only the copy back holds the server's GIL (~30 ms for 1M rows). The conversion is the one KServe's
`InferInput.as_numpy` would do, with the tensor's own datatype, so every check after it sees the same values.

Protocol on the helper's stdin/stdout: 8-byte little-endian length, then the body; the answer is a length and a
pickle of the parsed document (only ever read from this process's own child).
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
import threading

import numpy as np
import orjson

DTYPES = {"FP32": np.float32, "FP64": np.float64}
_lock = threading.Lock()
_helper: subprocess.Popen | None = None


def parse_request(body: bytes):
    """JSON -> document; each FP32/FP64 tensor's `data` as an array when it converts (else left as it was, for
    the predictor to reject). orjson.JSONDecodeError is returned, not raised, so it crosses the pipe."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return exc
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    for tensor in inputs if isinstance(inputs, list) else []:
        if isinstance(tensor, dict) and isinstance(tensor.get("data"), list) and tensor.get("datatype") in DTYPES:
            with contextlib.suppress(ValueError, TypeError):
                tensor["data"] = np.array(tensor["data"], dtype=DTYPES[tensor["datatype"]])
    return doc


def _read(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the JSON helper process went away")
    return data


def parse(body: bytes):
    """parse_request in the helper process (started on first use); blocks the calling thread only."""
    global _helper
    with _lock:
        if _helper is None or _helper.poll() is not None:
            _helper = subprocess.Popen([sys.executable, "-m", "inference_service.runtime.json_helper"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        try:
            _helper.stdin.write(len(body).to_bytes(8, "little") + body)
            _helper.stdin.flush()
            size = int.from_bytes(_read(_helper.stdout, 8), "little")
            return pickle.loads(_read(_helper.stdout, size))  # noqa: S301 - our own child's answer
        except (OSError, EOFError):
            _helper.kill()
            _helper = None
            return parse_request(body)  # the helper died: answer anyway, here


def main() -> None:
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while header := source.read(8):
        body = _read(source, int.from_bytes(header, "little"))
        answer = pickle.dumps(parse_request(body), protocol=5)
        sink.write(len(answer).to_bytes(8, "little") + answer)
        sink.flush()


if __name__ == "__main__":
    main()
