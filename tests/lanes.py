"""`task test`: the suite as two pytest sessions side by side on the 2-core machine.

One session runs the e2e lane (the demo once, then everything that checks what it left serving, in file order),
the other every other lane; each starts its own private stack on its own share of the test ports
(PLATFORM_TEST_SLOT, read by tests/conftest.py). Most of a session's time is waiting for processes it started
(MLflow, Spark, Ray, revisions), so two of them fill the cores. The e2e session streams to the console; the other
one's output follows when both are done. The exit code is the worse of the two.

(pytest-xdist's `--dist loadgroup` would do this, but with pytest 9.2 its groups are not applied: it renames the
node ids through an attribute pytest no longer reads.)

With arguments that name tests (paths or node ids), one plain pytest session runs them instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The two sessions' shares, evened out by moving whole self-contained modules (marker `beside_e2e`): measured from
# a fresh clone, e2e alone took 439 s and the rest 616 s.
LANES = (("e2e (and beside it)", "e2e or beside_e2e"), ("the other lanes", "not e2e and not beside_e2e"))


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest"]
    if any(not a.startswith("-") for a in argv):
        return subprocess.call([*pytest, *argv], cwd=REPO)
    logs, procs = [], []
    for slot, (name, expression) in enumerate(LANES):
        env = {**os.environ, "PLATFORM_TEST_SLOT": f"{slot}/{len(LANES)}"}
        command = [*pytest, "-m", expression, *argv]
        if slot == 0:
            procs.append((name, subprocess.Popen(command, cwd=REPO, env=env)))
            logs.append(None)
        else:
            log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - read back after the session ends
            procs.append((name, subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)))
            logs.append(log)

    def forward(signum, frame):  # a CI timeout's SIGTERM: each session stops what it started (tests/conftest.py)
        for _, proc in procs:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    codes = [proc.wait() for _, proc in procs]
    for (name, expression), log, code in zip(LANES, logs, codes, strict=True):
        if log is not None:
            log.seek(0)
            print(f"\n===== {name} (pytest -m '{expression}') =====", flush=True)
            sys.stdout.write(log.read())
        print(f"lane {name}: {'passed' if code == 0 else f'FAILED (exit {code})'}", flush=True)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
