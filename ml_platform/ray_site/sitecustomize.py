"""Run by Python at start-up in every process of the local Ray runtime (`init_ray` puts this directory first on
their PYTHONPATH; nothing else installs a sitecustomize here): the optional imports platform_core blocks in our
own processes are blocked in Ray's too, before `import ray` loads jsonschema. A local `ray.init` starts seven
Python processes (agents, monitors, workers), each of which built jsonschema's IRI grammar (2.7 s of CPU each,
measured) for nothing. Processes the driver starts later inherit the path too; for them it is the same
block platform_core applies anyway."""

try:
    from platform_core import lean_imports
except ImportError:  # a Python without the platform that inherited the path (another venv): nothing to block
    pass
else:
    lean_imports.skip()
