"""Orchestration, the top layer and the only one that chains stages: the demo, the Kubeflow pipeline and its
local runner, and the flows they share."""
