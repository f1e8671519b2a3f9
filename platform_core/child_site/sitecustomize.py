"""Run by Python at start-up in the child processes that platform_core.lean_imports.for_children() put this
directory first on the PYTHONPATH of (nothing else installs a sitecustomize here): the local Ray runtime's
processes and the local pipeline's task processes, which import jsonschema (through `import ray`, through
`import kfp`) before any module of ours. A local `ray.init` starts seven Python processes (agents, monitors,
workers), each of which built jsonschema's IRI grammar for nothing (2.7 s of CPU each, measured); a pipeline
task's `kfp` import 3-8 s. Processes started later inherit the path too; for them it is the same block
platform_core applies anyway."""

try:
    from platform_core import lean_imports
except ImportError:  # a Python without the platform that inherited the path (another venv): nothing to block
    pass
else:
    lean_imports.skip()
