#!/usr/bin/env bash
# Installs the cluster's operators at the versions pinned in manifests/versions.env, idempotently
# (kubectl apply --server-side, helm upgrade --install): re-running converges instead of failing.
#
#   manifests/install.sh                 install into the current kubectl context
#   manifests/install.sh --dry-run       print every command (with its pinned URL/chart) and touch nothing
#
# Environment: KNATIVE_DOMAIN (default: <ingress IP>.sslip.io once Kourier has an address; set it for real DNS).
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

KUBERAY_NAMESPACE=kuberay-system
STACKABLE_NAMESPACE=stackable-operators
STACKABLE_CHARTS=oci://oci.stackable.tech/sdp-charts
KSERVE_CHARTS=oci://ghcr.io/kserve/charts
KUBERAY_HELM_REPO=https://ray-project.github.io/kuberay-helm/
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
if [ "$DRY_RUN" = 0 ]; then
  ctx=$(kubectl config current-context) || { echo "install.sh: no current kubectl context (task cluster:kubeconfig)" >&2; exit 1; }
  echo "install.sh: installing into context '$ctx'" >&2
fi

step "cert-manager $CERT_MANAGER_VERSION"
run kubectl apply --server-side -f "$GH/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
run kubectl -n cert-manager wait --for=condition=Available deployment --all --timeout=300s

step "Knative Serving $KNATIVE_SERVING_VERSION + Kourier $KNATIVE_NET_KOURIER_VERSION"
run kubectl apply --server-side -f "$GH/knative/serving/releases/download/knative-v$KNATIVE_SERVING_VERSION/serving-crds.yaml"
run kubectl wait --for=condition=Established --timeout=120s crd/services.serving.knative.dev
run kubectl apply --server-side -f "$GH/knative/serving/releases/download/knative-v$KNATIVE_SERVING_VERSION/serving-core.yaml"
run kubectl apply --server-side -f "$GH/knative/net-kourier/releases/download/knative-v$KNATIVE_NET_KOURIER_VERSION/kourier.yaml"
run kubectl -n knative-serving patch configmap/config-network --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
run kubectl -n knative-serving wait --for=condition=Available deployment --all --timeout=300s

domain=${KNATIVE_DOMAIN:-}
if [ -z "$domain" ] && [ "$DRY_RUN" = 0 ]; then
  ip=""
  for _ in $(seq 1 60); do
    ip=$(kubectl -n kourier-system get service kourier \
      -o jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}' 2>/dev/null || true)
    [ -n "$ip" ] && break
    sleep 5
  done
  [ -n "$ip" ] || { echo "install.sh: Kourier has no load-balancer address after 5 min; set KNATIVE_DOMAIN and re-run" >&2; exit 1; }
  domain="$ip.sslip.io"
fi
domain=${domain:-example.com}
# The domain is configured by a patch, never by hand-editing the ConfigMap.
run kubectl -n knative-serving patch configmap/config-domain --type merge -p "{\"data\":{\"$domain\":\"\"}}"

step "KServe $KSERVE_VERSION (serverless mode)"
# Serverless (Knative) mode is required: RawDeployment/Standard silently ignores canaryTrafficPercent.
# KServe >= 0.21 calls the mode "Knative" and still accepts "Serverless". Kourier instead of Istio: KServe must not
# create its top-level Istio VirtualService (disableIstioVirtualHost); Knative routes through Kourier.
run helm upgrade --install kserve-crd "$KSERVE_CHARTS/kserve-crd" --version "$KSERVE_VERSION" \
  --namespace kserve --create-namespace --wait
run helm upgrade --install kserve "$KSERVE_CHARTS/kserve" --version "$KSERVE_VERSION" \
  --namespace kserve --create-namespace --wait \
  --set kserve.controller.deploymentMode=Serverless \
  --set kserve.controller.gateway.disableIstioVirtualHost=true

step "Stackable $STACKABLE_VERSION: commons, secret, listener, spark-k8s operators"
for op in commons-operator secret-operator listener-operator spark-k8s-operator; do
  run helm upgrade --install "$op" "$STACKABLE_CHARTS/$op" --version "$STACKABLE_VERSION" \
    --namespace "$STACKABLE_NAMESPACE" --create-namespace --wait
done

step "KubeRay $KUBERAY_VERSION"
run helm upgrade --install kuberay-operator kuberay-operator --repo "$KUBERAY_HELM_REPO" --version "$KUBERAY_VERSION" \
  --namespace "$KUBERAY_NAMESPACE" --create-namespace --wait

step "Kubeflow Pipelines $KFP_VERSION"
run kubectl apply --server-side -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
run kubectl wait --for=condition=Established --timeout=120s crd/applications.app.k8s.io
run kubectl apply --server-side -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"

[ "$DRY_RUN" = 1 ] && verb="would be installed" || verb="installed"
echo "install.sh: cert-manager $CERT_MANAGER_VERSION, Knative $KNATIVE_SERVING_VERSION (domain $domain), KServe $KSERVE_VERSION, Stackable $STACKABLE_VERSION, KubeRay $KUBERAY_VERSION, KFP $KFP_VERSION $verb" >&2
