"""A rollout change: the InferenceService a command wants and what kubectl would send to get there (a patch of
the existing object, or the whole object when it does not exist yet). Both backends (local revisions, the
Kubernetes API) take the same Change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Change:
    """A wanted spec and the patch that turns the current object into it (what kubectl would send)."""

    spec: dict[str, Any]
    patch_type: str  # merge | json | create (no object yet: the spec is applied whole)
    patch: Any
    expected_latest_percent: int  # what status.traffic must show for the latest revision
    # Locally: a latest revision found dead is started again, except on a weight change during a rollout, where
    # its loss is for the analysis to see (and roll back), not to be hidden by a restart.
    revive: bool = True
    manifest: str | None = None  # create: a file holding the spec (locally the model's spec file)

    @property
    def name(self) -> str:
        return self.spec["metadata"]["name"]

    def kubectl(self) -> str:
        namespace = self.spec["metadata"]["namespace"]
        if self.patch_type == "create":
            if self.manifest:
                return f"kubectl apply -f {self.manifest}"
            from inference_service.rollout.isvc import to_yaml

            return f"kubectl apply -f - <<'EOF'\n{to_yaml(self.spec)}EOF"
        return f"kubectl patch isvc {self.name} -n {namespace} --type={self.patch_type} -p '{json.dumps(self.patch)}'"
