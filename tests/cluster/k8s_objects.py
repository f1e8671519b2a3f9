"""What the cluster tests read out of built objects: the pod templates inside every workload kind the bundle uses
(custom resources included), what those reference (Secrets, ConfigMaps, ServiceAccounts, PVCs, images), and a
small NetworkPolicy evaluator. Plain functions over dicts, shared by test_manifests, test_references, test_values and
test_exposure."""

from __future__ import annotations

from collections.abc import Iterator

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def pod_specs(obj: dict) -> Iterator[tuple[str, dict]]:
    """Every full pod spec inside a workload (the ones our security rules apply to), with a label for messages."""
    kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec", {})
    if kind in WORKLOADS:
        yield f"{kind}/{name}", spec["template"]["spec"]
    elif kind == "CronJob":
        yield f"CronJob/{name}", spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "RayJob":
        cluster = spec["rayClusterSpec"]
        yield f"RayJob/{name} head", cluster["headGroupSpec"]["template"]["spec"]
        for group in cluster.get("workerGroupSpecs", []):
            yield f"RayJob/{name} worker {group['groupName']}", group["template"]["spec"]
        if "submitterPodTemplate" in spec:
            yield f"RayJob/{name} submitter", spec["submitterPodTemplate"]["spec"]


def pod_like(obj: dict) -> Iterator[tuple[str, dict]]:
    """Pod specs plus the partial pod specs of custom resources whose operator builds the pods (Stackable, KServe):
    everything a reference can hide in."""
    yield from pod_specs(obj)
    kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec", {})
    if kind == "SparkApplication":
        for role in ("job", "driver", "executor"):
            overrides = (spec.get(role) or {}).get("podOverrides", {}).get("spec")
            if overrides:
                yield f"SparkApplication/{name} {role}", overrides
        env = [{"name": e["name"], **({"value": e["value"]} if "value" in e else {})} for e in spec.get("env", [])]
        container = {"name": "spark", "image": spec["sparkImage"]["custom"], "env": env}
        yield f"SparkApplication/{name}", {"containers": [container], "volumes": spec.get("volumes", [])}
    elif kind == "ServingRuntime":
        yield f"ServingRuntime/{name}", spec
    elif kind == "InferenceService":
        predictor = spec["predictor"]
        containers = [c for c in (predictor.get("containers") or []) if c.get("image")]
        yield f"InferenceService/{name}", {**predictor, "containers": containers}


def containers(pod: dict) -> list[dict]:
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])


def references(obj: dict) -> Iterator[tuple[str, str, str | None, str]]:
    """(kind, name, key or None, where) for every object this one needs by name."""
    name = obj["metadata"]["name"]
    for where, pod in pod_like(obj):
        if pod.get("serviceAccountName"):
            yield "ServiceAccount", pod["serviceAccountName"], None, where
        for secret in pod.get("imagePullSecrets") or []:
            yield "Secret", secret["name"], None, where
        for volume in pod.get("volumes") or []:
            if "secret" in volume:
                for item in volume["secret"].get("items") or [None]:
                    yield "Secret", volume["secret"]["secretName"], item and item["key"], where
            if "configMap" in volume:
                yield "ConfigMap", volume["configMap"]["name"], None, where
            if "persistentVolumeClaim" in volume:
                yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], None, where
            for source in (volume.get("projected") or {}).get("sources") or []:
                for kind, field in (("Secret", "secret"), ("ConfigMap", "configMap")):
                    if field in source:
                        yield kind, source[field]["name"], None, where
        for c in containers(pod):
            for source in c.get("envFrom") or []:
                for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if field in source:
                        yield kind, source[field]["name"], None, f"{where}/{c['name']}"
            for env in c.get("env") or []:
                ref = env.get("valueFrom") or {}
                for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    if field in ref:
                        yield kind, ref[field]["name"], ref[field]["key"], f"{where}/{c['name']} env {env['name']}"
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind == "ServiceAccount":
        for secret in obj.get("secrets") or []:
            yield "Secret", secret["name"], None, f"ServiceAccount/{name} secrets"
    if kind == "S3Connection" and "credentials" in spec:
        yield "SecretClass", spec["credentials"]["secretClass"], None, f"S3Connection/{name}"
    if kind == "SparkApplication":
        yield "S3Connection", spec["s3connection"]["reference"], None, f"SparkApplication/{name}"
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        yield obj["roleRef"]["kind"], obj["roleRef"]["name"], None, f"{kind}/{name} roleRef"
        for subject in obj.get("subjects") or []:
            if subject["kind"] == "ServiceAccount":
                # an account of another namespace (KFP's pipeline-runner) is named with it: namespace/name
                ns = subject.get("namespace")
                sa = subject["name"] if ns in (None, obj["metadata"].get("namespace")) else f"{ns}/{subject['name']}"
                yield "ServiceAccount", sa, None, f"{kind}/{name} subject"
    if kind == "InferenceService":
        runtime = spec["predictor"].get("model", {}).get("runtime")
        if runtime:
            yield "ServingRuntime", runtime, None, f"InferenceService/{name}"


def images(obj: dict) -> Iterator[tuple[str, str]]:
    """(where, image) of every container image an object makes the cluster pull."""
    for where, pod in pod_like(obj):
        for c in containers(pod):
            if c.get("image"):
                yield f"{where}/{c['name']}", c["image"]


# --- NetworkPolicy evaluation (the subset the bundle uses: pod/namespace selectors, ports) -------------------------


def _selects(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "Exists" and key not in labels or op == "DoesNotExist" and key in labels:
            return False
        if op == "In" and labels.get(key) not in values or op == "NotIn" and labels.get(key) in values:
            return False
    return True


def _peer_matches(peer: dict, policy_ns: str, pod: dict) -> bool:
    if "ipBlock" in peer:
        return False  # the bundle's ipBlocks are for destinations outside the cluster, never pods
    if "namespaceSelector" in peer:
        ns_ok = _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod["namespace"]})
    else:
        ns_ok = pod["namespace"] == policy_ns
    return ns_ok and _selects(peer.get("podSelector"), pod["labels"])


def _port_matches(ports: list | None, port: int) -> bool:
    return not ports or any(p.get("protocol", "TCP") == "TCP" and p.get("port") == port for p in ports)


def allowed(policies: list[dict], source: dict, dest: dict, port: int) -> bool:
    """Would TCP traffic from pod `source` to pod `dest` on `port` pass? Pods are {namespace, labels}; policies are
    NetworkPolicy objects (each with metadata.namespace). Kubernetes semantics: a pod selected by no policy of a
    direction is open in that direction; otherwise some rule of a selecting policy must match."""

    def side(pod: dict, direction: str, peer_key: str, other: dict) -> bool:
        selecting = [p for p in policies if p["metadata"]["namespace"] == pod["namespace"]
                     and direction in p["spec"].get("policyTypes", ["Ingress"])
                     and _selects(p["spec"]["podSelector"], pod["labels"])]  # fmt: skip
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(direction.lower(), []) or []:
                peers = rule.get(peer_key)
                if (peers is None or any(_peer_matches(peer, pod["namespace"], other) for peer in peers)) and (
                    _port_matches(rule.get("ports"), port)
                ):
                    return True
        return False

    return side(source, "Egress", "to", dest) and side(dest, "Ingress", "from", source)
