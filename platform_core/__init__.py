"""Shared core: settings, errors, object store, local stack lifecycle and the CLI root."""
