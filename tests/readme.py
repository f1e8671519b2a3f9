"""The README's shell blocks as commands a test can run.

Every local block (all but "Deploy to a cluster") is split into commands (continuation lines joined, the
trailing comment cut). `COVERAGE` says, for each, which test runs it or why none can; `tests/code/test_readme.py`
fails when a README command is missing from it, and `run` executes one as written against the session's stack:
only the default ports and the `.platform/` state dir are replaced by the session's, and a `[optional]`
argument of the usage notation is dropped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CLUSTER_SECTION = "Deploy to a cluster"

# command (its start is enough) -> the test file that runs it, or "not run: <why>"
COVERAGE = {
    "./setup-env demo": "not run: `task demo` is `platform demo`, which the session's demo fixture runs in-process",
    "./setup-env test": "not run: this suite is what it runs (CI runs exactly it)",
    "curl -s -X POST http://127.0.0.1:18080/v2/models/iris-xgboost/infer": "tests/integration/test_demo_readme.py",
    "inference_service/prediction": "tests/integration/test_demo_readme.py",
    "task predict": "tests/integration/test_demo_readme.py",
    "task predict -- --grpc": "tests/integration/test_demo_readme.py",
    "task predict -- --json": "tests/integration/test_demo_readme.py",
    "task canary:start -- --alias challenger --percent 10": "tests/integration/test_demo_readme.py",
    "task canary:status": "tests/integration/test_demo_readme.py",
    "task canary:set -- 50": "tests/integration/test_demo_readme.py",
    "task canary:promote": "tests/integration/test_demo_readme.py",
    "task canary:rollback": "tests/integration/test_demo_readme.py",
    "task canary:auto": "tests/integration/test_demo_readme.py",
    "PLATFORM_SERVE_FAULTS=error_rate=0.3 task canary:start -- --alias challenger": (
        "tests/integration/test_demo_readme.py"
    ),
    "task pipeline:compile": "tests/integration/test_demo_readme.py",
    "task pipeline:run": "tests/integration/test_demo_pipeline.py",
    "PLATFORM_KFP_HOST=http://localhost:8888 task pipeline:submit": (
        "not run: needs a Kubeflow Pipelines API server (a cluster); tests/model/test_pipeline.py checks the IR"
    ),
    "task etl:generate": "tests/data/test_readme_datasets.py",
    "PLATFORM_SPARK_SERVER=true task etl": "tests/data/test_spark_server.py",
    "task status": "tests/data/test_spark_server.py",
    "task down": "tests/data/test_spark_server.py",
    "PLATFORM_DATASET=synth PLATFORM_CONTRACTS_DIR=.platform/contracts task etl": "tests/data/test_readme_datasets.py",
    "task test:fast": "not run: a lane of this suite (`task test` runs every lane)",
    "task test:cluster": "not run: a lane of this suite (`task test` runs every lane)",
    "task test:integration": "not run: a lane of this suite (`task test` runs every lane)",
    "task test:e2e": "not run: a lane of this suite (`task test` runs every lane)",
}


@dataclass(frozen=True)
class Block:
    section: str
    lang: str
    text: str

    @property
    def local(self) -> bool:
        return self.section != CLUSTER_SECTION


def blocks() -> list[Block]:
    """Every fenced block, with the `## ` section it sits in."""
    out, section = [], ""
    for match in re.finditer(r"(?ms)^## ([^\n]*)$|^```(\w*)\n(.*?)^```", README.read_text()):
        if match[1] is not None:
            section = match[1].strip()
        else:
            out.append(Block(section, match[2], match[3]))
    return out


def commands(block: Block) -> list[str]:
    """The block's commands: continuation lines joined, comment lines and trailing `  # ...` comments dropped."""
    logical = re.sub(r"\\\n\s*", " ", block.text)
    out = []
    for line in logical.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def local_commands() -> list[str]:
    return [c for b in blocks() if b.local and b.lang == "bash" for c in commands(b)]


def covering_key(command: str) -> str:
    """The COVERAGE key of a command: the longest one it is or starts with (KeyError: nothing covers it)."""
    keys = [k for k in COVERAGE if command == k or command.startswith(k + " ")]
    if not keys:
        raise KeyError(command)
    return max(keys, key=len)


def covering(command: str) -> str:
    return COVERAGE[covering_key(command)]


def command(start: str) -> str:
    """The one local README command whose COVERAGE key is `start` (the same command in two blocks is one)."""
    found = list(dict.fromkeys(c for c in local_commands() if c.startswith(start) and covering_key(c) == start))
    assert len(found) == 1, f"the README has {len(found)} commands for {start!r}: {found}"
    return found[0]


def as_run_here(text: str) -> str:
    """The command with the session's ports and state dir instead of the defaults the README shows."""
    from platform_core import settings

    for setting in (settings.SERVE_HTTP_PORT, settings.SERVE_GRPC_PORT, settings.MLFLOW_PORT, settings.S3_PORT):
        text = re.sub(rf"\b127\.0\.0\.1:{setting.default}\b", f"127.0.0.1:{setting.get()}", text)
    text = re.sub(r"(?<![\w/])\.platform/", f"{settings.state_dir()}/", text)
    return re.sub(r"\s\[[\w.-]+\]", "", text)


def run(text: str, timeout: float = 300, expect_ok: bool = True) -> subprocess.CompletedProcess:
    """Run a README command with bash from the repo root, the venv's tools first on PATH; fail on a non-zero exit."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["NO_COLOR"] = "1"  # go-task colors its command echo otherwise
    # stdout: what the user sees, both streams interleaved (the CLI's progress and results are on stderr).
    result = subprocess.run(["bash", "-c", as_run_here(text)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=timeout)  # fmt: skip
    if expect_ok:
        assert result.returncode == 0, f"`{text}` exited {result.returncode}:\n{result.stdout[-4000:]}"
    return result
