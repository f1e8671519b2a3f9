output "cluster_name" {
  description = "EKS cluster name."
  value       = module.platform.cluster_name
}

output "kubeconfig_command" {
  description = "Run this (or `task cluster:kubeconfig CLOUD=aws`) to reach the cluster."
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

output "platform_role_arn" {
  description = "PLATFORM_ROLE_ARN of the overlay's platform.env (components/aws puts it on every platform service account)."
  value       = module.platform.platform_role_arn
}

output "region" {
  description = "AWS_DEFAULT_REGION of the overlay's platform.env; `task cluster:kubeconfig` passes it to the AWS CLI."
  value       = module.platform.s3_region
}
