"""Replay a Dockerfile here without a Docker engine: its COPY set into an empty directory, its `uv` and `pip` RUN
steps as written (environment from its ENV lines, the venv inside the replayed tree), then what the image runs.

The image's filesystem is a directory: `/x` in the Dockerfile is `<into>/x` (so WORKDIR /app is into/app, a venv
at /opt/venv is into/opt/venv); a build stage (`FROM ... AS name`) gets a sibling directory `<into>-<name>` that
`COPY --from=name` reads. A base image is stood in for by a Python interpreter (`bases`; python:3.11 images are
this machine's python3.11), what `pip install` puts into its site-packages goes to `<into>/usr/local/lib/...`.

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
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
SITE_PACKAGES = "usr/local/lib/python3.11/site-packages"  # where root's `pip install` puts packages


def machine_python() -> str:
    """The stand-in for a python:3.11 base image's interpreter: the machine's (never a download)."""
    return shutil.which("python3.11") or sys.executable


@dataclass
class Replayed:
    root: Path  # the image's WORKDIR, replayed
    env: dict[str, str]
    entrypoint: list[str]
    fs: Path = Path()  # the image's filesystem root, replayed
    python: str = ""  # the image's interpreter: its venv's, or its base image's stand-in
    site: Path | None = None  # what `pip install` put into the base image's site-packages

    def run(self, *args: str, **kwargs) -> subprocess.Popen:
        """The image's entrypoint with `args`, from the replayed tree and its venv."""
        return subprocess.Popen([*self.entrypoint, *args], cwd=self.root, env=self.env, **kwargs)

    def path(self, image_path: str) -> Path:
        """Where an absolute path of the image is in the replay."""
        return self.fs / image_path.lstrip("/")

    def run_python(self, *args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
        """The image's Python with `args`; `env` sets variables as a pod's env does (PYTHONPATH too). What pip
        installed stays importable, as the base image's site-packages is whatever PYTHONPATH says."""
        run_env = {**self.env, **(env or {})}
        if self.site:
            run_env["PYTHONPATH"] = os.pathsep.join(p for p in (run_env.get("PYTHONPATH"), str(self.site)) if p)
        kwargs.setdefault("cwd", self.root)
        return subprocess.run([self.python, *args], env=run_env, capture_output=True, text=True, **kwargs)


@dataclass
class _Stage:
    fs: Path
    python: str
    env: dict[str, str]
    workdir: Path
    entrypoint: list[str] = field(default_factory=list)

    def path(self, path: str) -> Path:
        """An image path (absolute: under the stage's root; relative: under its WORKDIR) in the replay."""
        return self.fs / path.lstrip("/") if path.startswith("/") else self.workdir / path

    @property
    def venv(self) -> Path:
        return self.path(self.env.get("UV_PROJECT_ENVIRONMENT", ".venv"))


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            steps.append((op.upper(), rest.strip()))
    return steps


def _copy_args(rest: str) -> tuple[dict[str, str], list[str], str]:
    """COPY's flags, sources and target."""
    words = shlex.split(rest)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        assert key in ("from", "chown", "chmod"), f"the replay does not know COPY --{key}"
        flags[key] = value
    *sources, target = words
    return flags, sources, target


def copy_sources(dockerfile: Path) -> list[str]:
    """Every path the Dockerfile's COPY steps take from the build context (not from another stage)."""
    found = []
    for op, rest in _instructions(dockerfile):
        if op == "COPY":
            flags, sources, _ = _copy_args(rest)
            if "from" not in flags:
                found += [src.rstrip("/") for src in sources]
    return found


def replay(dockerfile: Path, into: Path, context: Path = REPO, bases: dict[str, str] | None = None) -> Replayed:
    """Build `dockerfile`'s image under `into` (see the module doc). `bases`: FROM image -> the Python interpreter
    that stands in for it (python:3.11* images default to the machine's)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_", "PLATFORM_", "PYTHON"))}
    steps = _instructions(dockerfile)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    stages: dict[str, _Stage] = {}
    stage: _Stage | None = None
    for i, (op, rest) in enumerate(steps):
        if op == "FROM":
            image, _, name = re.sub(r"\s+[aA][sS]\s+", " AS ", rest).partition(" AS ")
            fs = into if i == last_from else into.with_name(f"{into.name}-{name.strip() or i}")
            fs.mkdir(parents=True, exist_ok=True)
            stage = _Stage(fs, _base_python(image.strip(), bases or {}), dict(clean), fs)
            stages[name.strip() or str(i)] = stage
        elif op == "USER":
            continue
        elif op == "ENV":
            env = stage.env
            for key, value in (pair.split("=", 1) for pair in shlex.split(rest)):
                env[key] = re.sub(r"\$(\w+)", lambda m, env=env: env.get(m[1], ""), value)
        elif op == "WORKDIR":
            stage.workdir = stage.path(rest)
            stage.workdir.mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            _copy(rest, stage, context, stages)
        elif op == "RUN":
            _run(rest, stage)
        elif op == "ENTRYPOINT":
            first, *args = json.loads(rest)
            stage.entrypoint = [str(stage.venv / "bin" / first), *args]
        else:
            raise AssertionError(f"{dockerfile.name}: the replay does not know {op} (teach it, or the test lies)")
    env, venv = stage.env, stage.venv
    image_venv = env.pop("UV_PROJECT_ENVIRONMENT", "")
    env["PATH"] = env.get("PATH", "").replace(f"{image_venv}/bin", str(venv / "bin")) if image_venv else env["PATH"]
    has_venv = (venv / "bin" / "python").exists()
    if has_venv:
        env["VIRTUAL_ENV"] = str(venv)
    site = stage.fs / SITE_PACKAGES
    return Replayed(stage.workdir, env, stage.entrypoint, fs=stage.fs,
                    python=str(venv / "bin" / "python") if has_venv else stage.python,
                    site=site if site.is_dir() else None)  # fmt: skip


def _base_python(image: str, bases: dict[str, str]) -> str:
    if image in bases:
        return bases[image]
    if image.startswith("python:3.11"):
        return machine_python()
    raise AssertionError(f"the replay has no stand-in for FROM {image} (pass it in bases=)")


def _copy(rest: str, stage: _Stage, context: Path, stages: dict[str, _Stage]) -> None:
    flags, sources, target = _copy_args(rest)
    into_dir = target.endswith("/") or len(sources) > 1
    dst_root = stage.path(target)
    for source in sources:
        src = stages[flags["from"]].path(source) if "from" in flags else context / source.rstrip("/")
        if src.is_dir():  # a directory's contents go into the target (Docker's semantics)
            shutil.copytree(src, dst_root, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            dst = dst_root / src.name if into_dir or dst_root.is_dir() else dst_root
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)  # FileNotFoundError: the build would fail the same way


def _run(command: str, stage: _Stage) -> None:
    words = shlex.split(command)
    if words[:2] == ["apt-get", "update"]:
        assert "openjdk-17-jre-headless" not in command or shutil.which("java"), "the image's JRE is not here"
        return
    for part in re.split(r"\s+&&\s+", command):
        _run_one(part, shlex.split(part), stage)


def _run_one(command: str, words: list[str], stage: _Stage) -> None:
    if words[:2] == ["pip", "install"] and any(w.startswith("uv==") for w in words):
        wanted = next(w.split("==", 1)[1] for w in words if w.startswith("uv=="))
        have = subprocess.run([str(UV), "--version"], capture_output=True, text=True).stdout.split()[1]
        assert have == wanted, f"the image pins uv {wanted}, this venv has {have}"
        return
    if words[:2] == ["pip", "install"]:
        # Into the base image's site-packages (here a --target directory), with the Dockerfile's own flags.
        args, rest = [], iter(words[2:])
        for word in rest:
            if word == "--no-cache-dir":
                continue
            if word in ("-r", "--requirement"):
                args += ["-r", str(stage.path(next(rest)))]
            elif word in ("--no-deps", "--require-hashes"):
                args.append(word)
            else:
                raise AssertionError(f"the replay does not know `{word}` in RUN {command}")
        target = stage.fs / SITE_PACKAGES
        _uv(["pip", "install", "--python", stage.python, "--target", str(target), *args], command, stage)
        return
    if words[0] == "uv":
        # Absolute paths name the image's filesystem: here, the stage's directory.
        mapped = [re.sub(r"^((?:--[\w-]+=)?)(/.*)$", lambda m: m[1] + str(stage.path(m[2])), w) for w in words[1:]]
        _uv(mapped, command, stage)
        return
    if words[0] == "rm":
        for word in words[1:]:
            if not word.startswith("-"):
                path = stage.path(word)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        return
    raise AssertionError(f"the replay does not know RUN {command}")


def _uv(args: list[str], command: str, stage: _Stage) -> None:
    # The image's interpreter is its base image's (a stand-in here, never a download). Hard links instead of the
    # image's copies: the same files, without copying gigabytes.
    run_env = {
        **stage.env,
        "UV_PROJECT_ENVIRONMENT": str(stage.venv),
        "UV_LINK_MODE": "hardlink",
        "UV_PYTHON": stage.python,
        "UV_PYTHON_DOWNLOADS": "never",
        # Byte-compiling a 2 GB venv is the image's start-up optimisation, not part of what it contains (75 s here).
        "UV_COMPILE_BYTECODE": "0",
    }
    result = subprocess.run([str(UV), *args], cwd=stage.workdir, env=run_env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, f"RUN {command} failed in the replay:\n{result.stderr[-3000:]}"
