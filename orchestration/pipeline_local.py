"""Run the Kubeflow pipeline here with kfp.local: one subprocess per task, this venv, nothing installed at run time.

kfp.local streams every task's output, its executor input and outputs to stdout; that goes to
`<state>/logs/pipeline.log`, and the console gets one line per task (started, done or reused from kfp's local
cache, with its time) and a summary. A failed task ends the run with one error naming the task and the stage's
own message (the last line of its traceback), pointing at the log for the rest.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from platform_core import lean_imports, settings
from platform_core.errors import PlatformError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
CACHED = re.compile(r"Task (\S+) cache hit")
ERROR_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception|Unavailable|Exit)): (.+)$")


@dataclass
class TaskLine:
    name: str
    status: str = "running"
    seconds: float = 0.0
    error: str = ""


@dataclass
class Progress:
    """A stdout stand-in: everything to the log; task starts and ends as lines on the real console."""

    log: object
    console: object
    tasks: dict[str, TaskLine] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)
    _current: str = ""
    _buffer: str = ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.console.flush()

    def isatty(self) -> bool:
        return False

    def _say(self, text: str) -> None:
        self.console.write(text + "\n")
        self.console.flush()

    def _line(self, line: str) -> None:
        if match := STARTED.search(line):
            self._current = match[1]
            self._started[self._current] = time.monotonic()
            self.tasks[self._current] = TaskLine(self._current)
            self._say(f"  {self._current:<18} running ...")
        elif match := CACHED.search(line):
            self.tasks[match[1]] = TaskLine(match[1], "cached")
            self._say(f"  {match[1]:<18} reused (kfp cache: same inputs as an earlier run)")
        elif match := FINISHED.search(line):
            task = self.tasks.setdefault(match[1], TaskLine(match[1]))
            task.status = "done" if match[2] == "SUCCESS" else "failed"
            task.seconds = time.monotonic() - self._started.get(match[1], time.monotonic())
            self._say(f"  {match[1]:<18} {task.status} in {task.seconds:.1f} s")
        elif self._current and (match := ERROR_LINE.match(line)):
            self.tasks[self._current].error = f"{match[1]}: {match[2]}"  # the last one is the traceback's end


def run(flow, **arguments) -> dict[str, TaskLine]:
    """Run `flow` (the pipeline function) with kfp.local; returns the tasks by name."""
    from kfp import local

    root = settings.state_dir() / "pipelines"
    root.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir() / "logs" / "pipeline.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    lean_imports.for_children()  # each task's process imports kfp (and jsonschema) before any module of ours
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True,
               enable_caching=True, cache_root=str(root / ".cache"))  # fmt: skip
    with log_path.open("a") as log, warnings.catch_warnings():
        # kfp warns that the components name a non-Python image: here they run the same code from this venv.
        warnings.filterwarnings("ignore", message=".*non-Python base image", category=RuntimeWarning)
        progress = Progress(log, sys.stdout)
        saved, sys.stdout = sys.stdout, progress
        # kfp logs a cache hit outside its per-task logging setup: at INFO, to the root logger's handlers.
        root, handler = logging.getLogger(), logging.StreamHandler(progress)
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            flow(**arguments)
        except RuntimeError as exc:
            raise _failure(progress, ANSI.sub("", str(exc)), log_path) from None
        finally:
            sys.stdout = saved
            root.removeHandler(handler)
            root.setLevel(level)
    return progress.tasks


def _failure(progress: Progress, message: str, log_path: Path) -> PlatformError:
    failed = [t for t in progress.tasks.values() if t.status in ("failed", "running")]
    named = re.search(r"Inner task failed: '([^']+)'", message) or re.search(r"Task '([^']+)'", message)
    task = failed[-1] if failed else TaskLine(named[1] if named else "?")
    why = task.error or "it exited with an error"
    return PlatformError(f"pipeline task '{task.name}' failed: {why}", f"the task's full output is in {log_path}")
