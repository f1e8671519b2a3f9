output "cluster_name" {
  description = "EKS cluster name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "kubeconfig_command" {
  description = "Writes a kubeconfig entry for this cluster (what `task cluster:kubeconfig CLOUD=aws` runs)."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${var.name}"
}

output "bucket_name" {
  description = "Platform bucket (PLATFORM_BUCKET)."
  value       = aws_s3_bucket.this.bucket
}

output "s3_endpoint" {
  description = "S3 endpoint URL for the platform (PLATFORM_S3_ENDPOINT)."
  value       = "https://s3.${var.region}.amazonaws.com"
}

output "s3_region" {
  description = "Region of the bucket (AWS_DEFAULT_REGION in the pods)."
  value       = var.region
}

output "platform_role_arn" {
  description = "IAM role for the platform's service accounts: annotate them with eks.amazonaws.com/role-arn=<this>."
  value       = aws_iam_role.platform.arn
}

output "oidc_provider_arn" {
  description = "IAM OIDC provider of the cluster (IRSA)."
  value       = aws_iam_openid_connect_provider.eks.arn
}

output "vpc_id" {
  description = "VPC the cluster runs in."
  value       = local.vpc_id
}

output "addon_versions" {
  description = "The pinned EKS add-ons (name -> version)."
  value       = { (aws_eks_addon.vpc_cni.addon_name) = aws_eks_addon.vpc_cni.addon_version, (aws_eks_addon.ebs_csi.addon_name) = aws_eks_addon.ebs_csi.addon_version }
}
