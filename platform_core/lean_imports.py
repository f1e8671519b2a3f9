"""Optional imports that a process of ours never uses, blocked before the library that would load them.

A module set to None in `sys.modules` reads as "not installed": `import x` raises ImportError, which the
libraries below catch and go on without it. They rely on that (an internal behaviour, not an API):
tests/model/test_library_seams.py fails, naming the library, when an upgrade stops catching it.

- `rfc3987_syntax` (everywhere): jsonschema's format module imports it when installed (JupyterLab's
  dependencies bring it here) and builds a grammar at import time, 3.2-3.5 s of CPU (measured, `python -X
  importtime`) in every process that imports jsonschema: Ray does, and so does kserve (kubernetes ->
  kubernetes_validate), i.e. every model server start. Nothing of ours checks an IRI format.
- `sklearn` (a model server process only): xgboost's compat module imports scikit-learn when installed, for
  its scikit-learn estimators (1.8 s); the server loads a Booster. The serving image installs the runtime's
  dependencies only, without scikit-learn, so a local revision then imports what a predictor pod imports.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CHILD_SITE = Path(__file__).with_name("child_site")  # its sitecustomize applies `skip()` in child processes
EVERYWHERE = ("rfc3987_syntax",)
NOT_IN_THE_SERVING_IMAGE = ("sklearn",)


def skip(names: tuple[str, ...] = EVERYWHERE) -> None:
    """Block `names` in this process (a module already imported stays as it is)."""
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  (None = "not installed" to importers)


def for_children() -> None:
    """The same block in the Python processes this one starts from now on that import a library before any
    module of ours (Ray's processes, kfp's task processes): `child_site` first on the PYTHONPATH they inherit."""
    path = os.environ.get("PYTHONPATH", "")
    if not path.startswith(str(CHILD_SITE)):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(CHILD_SITE), path) if p)
