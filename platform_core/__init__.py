"""Shared core: settings, errors, object store, local stack lifecycle and the CLI root.

Every process of ours imports this package first (any platform module imports it), so optional imports no
process of ours uses are blocked here, before any library could load them (platform_core/lean_imports.py)."""

from platform_core import lean_imports

lean_imports.skip()
