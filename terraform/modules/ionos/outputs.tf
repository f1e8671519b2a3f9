output "cluster_id" {
  description = "Managed Kubernetes cluster UUID (IONOS_CLUSTER_ID for `task cluster:kubeconfig`)."
  value       = ionoscloud_k8s_cluster.this.id
}

output "cluster_name" {
  description = "Cluster name."
  value       = ionoscloud_k8s_cluster.this.name
}

output "kubeconfig_command" {
  description = "Writes the cluster's kubeconfig (needs IONOS_TOKEN in the environment)."
  value       = "task cluster:kubeconfig CLOUD=ionos IONOS_CLUSTER_ID=${ionoscloud_k8s_cluster.this.id}"
}

output "bucket_name" {
  description = "PLATFORM_BUCKET."
  value       = ionoscloud_s3_bucket.this.name
}

output "s3_endpoint" {
  description = "PLATFORM_S3_ENDPOINT."
  value       = "https://s3.${var.s3_region}.ionoscloud.com"
}

output "s3_region" {
  description = "AWS_DEFAULT_REGION for S3 clients."
  value       = var.s3_region
}

output "s3_access_key_id" {
  description = "Access key id of the platform's S3 key."
  value       = ionoscloud_s3_key.platform.id
}

output "s3_secret_access_key" {
  description = "Secret of the platform's S3 key: `terraform output -raw s3_secret_access_key` piped into kubectl, never printed in CI."
  value       = ionoscloud_s3_key.platform.secret_key
  sensitive   = true
}
