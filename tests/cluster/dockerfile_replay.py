"""Replay a Dockerfile here without a Docker engine: its COPY set into an empty directory, its `uv` RUN steps
as written (environment from its ENV lines, the venv inside the replayed tree), then what the image runs.

Only the steps this project's Dockerfiles use are understood; anything else fails the replay, so a new kind of
step cannot pass unreplayed. `apt-get` steps are checked against the machine (the JRE they install must be here)
and `pip install uv==X` against the uv this venv has."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")


@dataclass
class Replayed:
    root: Path  # the image's WORKDIR, replayed
    env: dict[str, str]
    entrypoint: list[str]

    def run(self, *args: str, **kwargs) -> subprocess.Popen:
        """The image's entrypoint with `args`, from the replayed tree and its venv."""
        return subprocess.Popen([*self.entrypoint, *args], cwd=self.root, env=self.env, **kwargs)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            steps.append((op.upper(), rest.strip()))
    return steps


def copy_sources(dockerfile: Path) -> list[str]:
    """Every path the Dockerfile's COPY steps take from the build context."""
    return [src.rstrip("/") for op, rest in _instructions(dockerfile) if op == "COPY" for src in shlex.split(rest)[:-1]]


def replay(dockerfile: Path, into: Path, context: Path = REPO) -> Replayed:
    """Build `dockerfile`'s tree under `into` (its WORKDIR becomes into/app, its venv into/venv)."""
    workdir, venv = into / "app", into / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_", "PLATFORM_"))}
    entrypoint: list[str] = []
    for op, rest in _instructions(dockerfile):
        if op in ("FROM", "USER"):
            continue
        if op == "ENV":
            for key, value in (pair.split("=", 1) for pair in shlex.split(rest)):
                env[key] = re.sub(r"\$(\w+)", lambda m: env.get(m[1], ""), value)
        elif op == "WORKDIR":
            workdir.mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            *sources, _target = shlex.split(rest)
            for source in sources:
                src = context / source.rstrip("/")
                dst = workdir / source.rstrip("/")
                if src.is_dir():
                    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(src, dst)  # FileNotFoundError: the build would fail the same way
        elif op == "RUN":
            _run(rest, workdir, env, venv)
        elif op == "ENTRYPOINT":
            first, *args = json.loads(rest)
            entrypoint = [str(venv / "bin" / first), *args]
        else:
            raise AssertionError(f"{dockerfile.name}: the replay does not know {op} (teach it, or the test lies)")
    image_venv = env.pop("UV_PROJECT_ENVIRONMENT", "")
    env["PATH"] = env.get("PATH", "").replace(f"{image_venv}/bin", str(venv / "bin")) if image_venv else env["PATH"]
    env["VIRTUAL_ENV"] = str(venv)
    return Replayed(workdir, env, entrypoint)


def _run(command: str, workdir: Path, env: dict[str, str], venv: Path) -> None:
    words = shlex.split(command)
    if words[:2] == ["apt-get", "update"]:
        assert "openjdk-17-jre-headless" not in command or shutil.which("java"), "the image's JRE is not here"
        return
    if words[:2] == ["pip", "install"]:
        wanted = next(w.split("==", 1)[1] for w in words if w.startswith("uv=="))
        have = subprocess.run([str(UV), "--version"], capture_output=True, text=True).stdout.split()[1]
        assert have == wanted, f"the image pins uv {wanted}, this venv has {have}"
        return
    if words[0] == "uv":
        # The image's interpreter is its base image's python3.11: here, the machine's (never a download).
        # Hard links instead of the image's copies: the same files, without copying gigabytes.
        run_env = {
            **env,
            "UV_PROJECT_ENVIRONMENT": str(venv),
            "UV_LINK_MODE": "hardlink",
            "UV_PYTHON": shutil.which("python3.11") or sys.executable,
            "UV_PYTHON_DOWNLOADS": "never",
        }
        result = subprocess.run([str(UV), *words[1:]], cwd=workdir, env=run_env, capture_output=True, text=True,
                                timeout=600)  # fmt: skip
        assert result.returncode == 0, f"RUN {command} failed in the replay:\n{result.stderr[-3000:]}"
        return
    raise AssertionError(f"the replay does not know RUN {command}")
