#!/usr/bin/env bash
# Installs the cluster's operators at the versions pinned in manifests/versions.env, idempotently
# (kubectl apply --server-side, helm upgrade --install): re-running converges instead of failing.
#
#   KNATIVE_DOMAIN=ml.example.com manifests/install.sh             install into the current kubectl context
#   KNATIVE_DOMAIN=ml.example.com manifests/install.sh --dry-run   print every command and touch nothing
#
# KNATIVE_DOMAIN (required): the DNS suffix of the InferenceService URLs (Host header <name>.<namespace>.<domain>).
# Nothing is exposed outside the cluster: Kourier's gateway is ClusterIP (manifests/cluster/kourier-service.yaml),
# Prometheus, MLflow and KFP too; reach them with `kubectl port-forward`, authenticated by the Kubernetes API.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$here/versions.env"

DRY_RUN=0
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

# No guessed default: sslip.io needs a public IP (an ELB hostname does not resolve there) and the gateway has none.
domain=${KNATIVE_DOMAIN:-}
if [ -z "$domain" ]; then
  echo "install.sh: KNATIVE_DOMAIN is not set (the DNS suffix of InferenceService URLs, e.g. KNATIVE_DOMAIN=ml.example.com)" >&2
  exit 2
fi

KUBERAY_NAMESPACE=kuberay-system
STACKABLE_NAMESPACE=stackable-operators
PROMETHEUS_NAMESPACE=monitoring  # PLATFORM_PROMETHEUS_URL in manifests/base points here
STACKABLE_CHARTS=oci://oci.stackable.tech/sdp-charts
KSERVE_CHARTS=oci://ghcr.io/kserve/charts
KUBERAY_HELM_REPO=https://ray-project.github.io/kuberay-helm/
PROMETHEUS_HELM_REPO=https://prometheus-community.github.io/helm-charts
GH=https://github.com

run() {
  # Every cluster-touching command goes through here, so --dry-run shows exactly what would run.
  if [ "$DRY_RUN" = 1 ]; then
    printf '+ %s\n' "$*"
  else
    printf '+ %s\n' "$*" >&2
    "$@"
  fi
}

step() { printf '\n== %s\n' "$*" >&2; }

need() {
  [ "$DRY_RUN" = 1 ] && return 0
  command -v "$1" >/dev/null 2>&1 || { echo "install.sh: '$1' is required (devbox shell has it)" >&2; exit 1; }
}

need kubectl
need helm
need curl
if [ "$DRY_RUN" = 0 ]; then
  ctx=$(kubectl config current-context) || { echo "install.sh: no current kubectl context (task cluster:kubeconfig)" >&2; exit 1; }
  echo "install.sh: installing into context '$ctx'" >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "cert-manager $CERT_MANAGER_VERSION"
run kubectl apply --server-side -f "$GH/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
run kubectl -n cert-manager wait --for=condition=Available deployment --all --timeout=300s

step "Knative Serving $KNATIVE_SERVING_VERSION + Kourier $KNATIVE_NET_KOURIER_VERSION (gateway ClusterIP)"
run kubectl apply --server-side -f "$GH/knative/serving/releases/download/knative-v$KNATIVE_SERVING_VERSION/serving-crds.yaml"
run kubectl wait --for=condition=Established --timeout=120s crd/services.serving.knative.dev
run kubectl apply --server-side -f "$GH/knative/serving/releases/download/knative-v$KNATIVE_SERVING_VERSION/serving-core.yaml"
# Kourier's manifest is patched before it is applied (not after): a later plain apply would turn the gateway back
# into a public LoadBalancer, and a patch after apply conflicts with the next server-side apply.
run curl -fsSL -o "$work/kourier.yaml" "$GH/knative/net-kourier/releases/download/knative-v$KNATIVE_NET_KOURIER_VERSION/kourier.yaml"
run cp "$here/cluster/kourier-service.yaml" "$work/kourier-service.yaml"
run cp "$here/cluster/kourier-kustomization.yaml" "$work/kustomization.yaml"
run kubectl apply --server-side -k "$work"
run kubectl -n knative-serving patch configmap/config-network --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
# The domain is configured by a patch, never by hand-editing the ConfigMap.
run kubectl -n knative-serving patch configmap/config-domain --type merge -p "{\"data\":{\"$domain\":\"\"}}"
run kubectl -n knative-serving wait --for=condition=Available deployment --all --timeout=300s

step "Prometheus (kube-prometheus-stack $PROMETHEUS_CHART_VERSION) for the canary analysis"
run helm upgrade --install kube-prometheus-stack kube-prometheus-stack --repo "$PROMETHEUS_HELM_REPO" \
  --version "$PROMETHEUS_CHART_VERSION" --namespace "$PROMETHEUS_NAMESPACE" --create-namespace --wait \
  -f "$here/cluster/prometheus-values.yaml"

step "KServe $KSERVE_VERSION (Knative mode)"
# Knative mode is required: Standard (RawDeployment) silently ignores canaryTrafficPercent. Kourier instead of
# Istio: KServe must not create its top-level Istio VirtualService (disableIstioVirtualHost). S3 keys are read
# under the Stackable names (accessKey / secretKey), so one Secret serves KServe, Spark, MLflow and Ray.
run helm upgrade --install kserve-crd "$KSERVE_CHARTS/kserve-crd" --version "$KSERVE_VERSION" \
  --namespace kserve --create-namespace --wait
run helm upgrade --install kserve-resources "$KSERVE_CHARTS/kserve-resources" --version "$KSERVE_VERSION" \
  --namespace kserve --create-namespace --wait \
  --set kserve.controller.deploymentMode=Knative \
  --set kserve.controller.gateway.disableIstioVirtualHost=true \
  --set kserve.storage.s3.accessKeyIdName=accessKey \
  --set kserve.storage.s3.secretAccessKeyName=secretKey

step "Stackable $STACKABLE_VERSION: commons, secret, listener, spark-k8s operators + the S3 SecretClass"
for op in commons-operator secret-operator listener-operator spark-k8s-operator; do
  run helm upgrade --install "$op" "$STACKABLE_CHARTS/$op" --version "$STACKABLE_VERSION" \
    --namespace "$STACKABLE_NAMESPACE" --create-namespace --wait
done
run kubectl apply --server-side -f "$here/cluster/secretclass.yaml"

step "KubeRay $KUBERAY_VERSION"
run helm upgrade --install kuberay-operator kuberay-operator --repo "$KUBERAY_HELM_REPO" --version "$KUBERAY_VERSION" \
  --namespace "$KUBERAY_NAMESPACE" --create-namespace --wait

step "Kubeflow Pipelines $KFP_VERSION"
run kubectl apply --server-side -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
run kubectl wait --for=condition=Established --timeout=120s crd/applications.app.k8s.io
run kubectl apply --server-side -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"

[ "$DRY_RUN" = 1 ] && verb="would be installed" || verb="installed"
echo "install.sh: cert-manager $CERT_MANAGER_VERSION, Knative $KNATIVE_SERVING_VERSION (domain $domain), Prometheus chart $PROMETHEUS_CHART_VERSION, KServe $KSERVE_VERSION, Stackable $STACKABLE_VERSION, KubeRay $KUBERAY_VERSION, KFP $KFP_VERSION $verb" >&2
