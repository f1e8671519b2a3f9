#!/usr/bin/env bash
# Deploys one leaf, manifests/overlays/<overlay>-<cloud>, together with the serving files (ServingRuntime and
# InferenceService, manifests/serving/), which get the same wiring: the leaf's bucket, namespace and images.
#
#   manifests/deploy.sh <dev|production> <ionos|aws>            apply to the current kubectl context
#   manifests/deploy.sh <dev|production> <ionos|aws> --print    print what would be applied, touch nothing
#
# Environment: KUBECTL (default kubectl); ISVC_FILE (default manifests/serving/inferenceservice.yaml; the
# servingruntime.yaml next to it comes along). How objects are applied, so that re-running converges and never
# undoes work in progress:
#   platform/example-secret=true  fake dev Secrets: created only when missing, never over a real one
#   platform/create-only=true     run-once objects (SparkApplication, RayJob) and the InferenceService: created
#                                 only when absent, so a running ETL, search or canary rollout is left alone
#   everything else               kubectl apply
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
usage() { echo "usage: $0 <dev|production> <ionos|aws> [--print]" >&2; exit 2; }
[ $# -ge 2 ] || usage
overlay=$1 cloud=$2 print=0
case "${3:-}" in --print) print=1 ;; "") ;; *) usage ;; esac
[ -f "$here/overlays/$overlay-$cloud/kustomization.yaml" ] || usage
KUBECTL=${KUBECTL:-kubectl}
ISVC_FILE=${ISVC_FILE:-$here/serving/inferenceservice.yaml}

# kustomize accepts other kustomizations only by relative path: the build dir lives in the ignored .platform/.
mkdir -p "$root/.platform"
work=$(mktemp -d "$root/.platform/deploy.XXXXXX")
trap 'rm -rf "$work"' EXIT
{
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n'
  printf '  - ../../manifests/overlays/%s-%s\n' "$overlay" "$cloud"
  if [ -f "$ISVC_FILE" ]; then
    runtime="$(dirname "$ISVC_FILE")/servingruntime.yaml"
    if [ -f "$runtime" ]; then cp "$runtime" "$work/servingruntime.yaml" && echo "  - servingruntime.yaml"; fi
    cp "$ISVC_FILE" "$work/inferenceservice.yaml" && echo "  - inferenceservice.yaml"
  fi
  printf 'components:\n  - ../../manifests/components/wiring\n'
  printf 'patches:\n  - target: {kind: InferenceService}\n    patch: |-\n'
  printf '      [{"op": "add", "path": "/metadata/labels/platform~1create-only", "value": "true"}]\n'
} > "$work/kustomization.yaml"
built="$work/built.yaml"
"$KUBECTL" kustomize "$work" > "$built"
if [ "$print" = 1 ]; then cat "$built"; exit 0; fi
[ -f "$ISVC_FILE" ] || echo "deploy.sh: no InferenceService at $ISVC_FILE (task serving:render-k8s writes it)"

# Values for the commands below come from the build itself, never from a second copy.
ns=$(sed -n 's/^namespace: //p' "$here/components/wiring/kustomization.yaml")
setting() { sed -n "s/^  $1: //p" "$built" | head -n 1; }

create_missing() {  # $1: label whose objects are created only when absent
  grep -q "$1: \"true\"" "$built" || return 0
  local out errors
  out=$("$KUBECTL" create -f "$built" -l "$1=true" --save-config 2>&1) || true
  errors=$(printf '%s\n' "$out" | grep -i '^error' | grep -v AlreadyExists || true)
  [ -z "$errors" ] || { echo "$errors" >&2; exit 1; }
  printf '%s\n' "$out" | grep -v AlreadyExists || true
}

"$KUBECTL" apply -f "$built" -l 'platform/example-secret!=true,platform/create-only!=true'
create_missing platform/example-secret
if [ "$cloud" = ionos ]; then
  # s3-credentials is yours (manifests/prerequisites.yaml); Spark finds it by the SecretClass label, KServe's
  # storage initializer reads endpoint and region from its annotations: both set here from platform-settings.
  "$KUBECTL" -n "$ns" get secret s3-credentials >/dev/null \
    || { echo "deploy.sh: no Secret s3-credentials in $ns: create it first (README, Deploy to a cluster, step 3)" >&2; exit 1; }
  class=$(sed -n 's/^ *secretClass: //p' "$built" | head -n 1)
  "$KUBECTL" -n "$ns" label --overwrite secret s3-credentials "secrets.stackable.tech/class=$class"
  "$KUBECTL" -n "$ns" annotate --overwrite secret s3-credentials \
    "serving.kserve.io/s3-endpoint=$(setting PLATFORM_K8S_S3_HOST)" serving.kserve.io/s3-usehttps=1 \
    "serving.kserve.io/s3-region=$(setting AWS_DEFAULT_REGION)"
fi
create_missing platform/create-only

# Kubeflow Pipelines (standalone) runs the pipeline's tasks in its own namespace as pipeline-runner, and a pod reads
# ConfigMaps and Secrets of its own namespace only: the tasks' settings and credentials (orchestration/pipeline.py,
# kfp-kubernetes) are copies made here on every deploy. Only the keys the tasks read; values never touch a disk.
kfp_ns=$(setting PLATFORM_KFP_NAMESPACE)
mirror() {  # $1 kind (configmap|secret), $2 name, $3... keys (default: all)
  local kind=$1 name=$2 tpl
  shift 2
  tpl="apiVersion: v1
kind: $( [ "$kind" = secret ] && echo Secret || echo ConfigMap )
metadata:
  name: $name
  namespace: $kfp_ns
  labels: {app.kubernetes.io/part-of: kfserve-bundle, platform/copied-from: $ns}
data:
"
  if [ $# -eq 0 ]; then
    # shellcheck disable=SC2016  # a go-template for kubectl, not a shell expansion
    tpl+='{{range $k, $v := .data}}  {{$k}}: {{printf "%q" $v}}
{{end}}'
  else
    for key in "$@"; do tpl+="  $key: {{index .data \"$key\"}}
"; done
  fi
  "$KUBECTL" -n "$ns" get "$kind" "$name" -o "go-template=$tpl" | "$KUBECTL" apply -f -
}
if "$KUBECTL" get namespace "$kfp_ns" >/dev/null 2>&1; then
  mirror configmap platform-settings
  mirror secret mlflow-auth MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
  if [ "$cloud" = ionos ]; then
    mirror secret s3-credentials accessKey secretKey
  else  # IRSA: the platform's S3 role trusts $kfp_ns:pipeline-runner (terraform/modules/aws, kfp_namespace)
    "$KUBECTL" -n "$kfp_ns" annotate --overwrite serviceaccount pipeline-runner \
      "eks.amazonaws.com/role-arn=$(setting PLATFORM_ROLE_ARN)"
  fi
else
  echo "deploy.sh: no namespace $kfp_ns (cluster:install installs Kubeflow Pipelines there): the pipeline gets no settings yet"
fi
echo "deploy.sh: $overlay/$cloud deployed to namespace $ns"
