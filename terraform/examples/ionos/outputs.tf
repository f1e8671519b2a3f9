output "cluster_id" {
  description = "IONOS_CLUSTER_ID for `task cluster:kubeconfig`."
  value       = module.platform.cluster_id
}

output "kubeconfig_command" {
  description = "Run this to write the kubeconfig."
  value       = module.platform.kubeconfig_command
}

output "bucket_name" {
  description = "PLATFORM_BUCKET of the overlay's platform.env."
  value       = module.platform.bucket_name
}

output "s3_endpoint" {
  description = "PLATFORM_S3_ENDPOINT of the overlay's platform.env."
  value       = module.platform.s3_endpoint
}

output "s3_access_key_id" {
  description = "Platform S3 access key id."
  value       = module.platform.s3_access_key_id
}

output "s3_secret_access_key" {
  description = "Platform S3 secret (sensitive)."
  value       = module.platform.s3_secret_access_key
  sensitive   = true
}

output "s3_region" {
  description = "AWS_DEFAULT_REGION of the overlay's platform.env."
  value       = module.platform.s3_region
}
