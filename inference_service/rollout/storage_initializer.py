"""KServe's storage initializer as its own process, as an InferenceService runs it (an init container):
`python -m inference_service.rollout.storage_initializer <storageUri> <dir>`.

kserve_storage downloads S3 objects with a forked multiprocessing pool; forked from a process that runs a JVM,
Ray or gRPC threads (the demo, a pipeline task, the test session), a pool worker can crash and leave the
download hanging. A fresh process has none of them."""

from __future__ import annotations

import sys

NOTHING_THERE = 3  # exit code: no bundle at the URI (kserve_storage's RuntimeError)


def main() -> int:
    uri, target = sys.argv[1], sys.argv[2]
    from kserve_storage import Storage

    try:
        Storage.download(uri, target)
    except RuntimeError as exc:  # kserve_storage's way of saying "nothing there"
        print(str(exc)[:500], file=sys.stderr)
        return NOTHING_THERE
    return 0


if __name__ == "__main__":
    sys.exit(main())
