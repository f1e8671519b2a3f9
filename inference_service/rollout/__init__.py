"""Rollout: the InferenceService spec, the local revision controller and proxy, the cluster backend, canary
commands and their automatic analysis."""
