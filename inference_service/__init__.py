"""Serving, in two layers: `runtime` (what runs in a predictor pod: the kserve.Model, the loopback model server,
the v2 client; imports platform_core only) and `rollout` (the InferenceService, local revisions behind the proxy,
the cluster backend, canary analysis; reads the registry and the bundle through ml_platform's public functions)."""
