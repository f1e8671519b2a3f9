"""The serving runtime: what a predictor pod runs (installable without Spark, Ray or MLflow; imports only
platform_core). KServe internals it relies on sit in `kserve_seam`."""
