"""A rollout change: the InferenceService a command wants and the patch kubectl would send to get there. Both
backends (local revisions, the Kubernetes API) take the same Change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Change:
    """A wanted spec and the patch that turns the current object into it (what kubectl would send)."""

    spec: dict[str, Any]
    patch_type: str  # merge | json
    patch: Any
    expected_latest_percent: int  # what status.traffic must show for the latest revision
    # Locally: a latest revision found dead is started again, except on a weight change during a rollout, where
    # its loss is for the analysis to see (and roll back), not to be hidden by a restart.
    revive: bool = True

    def kubectl(self) -> str:
        name, namespace = self.spec["metadata"]["name"], self.spec["metadata"]["namespace"]
        return f"kubectl patch isvc {name} -n {namespace} --type={self.patch_type} -p '{json.dumps(self.patch)}'"
