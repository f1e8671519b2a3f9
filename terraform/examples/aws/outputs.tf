output "cluster_name" {
  description = "EKS cluster name."
  value       = module.platform.cluster_name
}

output "kubeconfig_command" {
  description = "Run this (or `task cluster:kubeconfig CLOUD=aws`) to reach the cluster."
  value       = module.platform.kubeconfig_command
}

output "bucket_name" {
  description = "PLATFORM_BUCKET."
  value       = module.platform.bucket_name
}

output "s3_endpoint" {
  description = "PLATFORM_S3_ENDPOINT."
  value       = module.platform.s3_endpoint
}

output "platform_role_arn" {
  description = "Annotate the platform service accounts with eks.amazonaws.com/role-arn=<this>."
  value       = module.platform.platform_role_arn
}
