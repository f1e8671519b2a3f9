# Offline plan tests: a mock provider answers every AWS call, so no credentials or network are needed.
#   terraform init && terraform test
mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  # The provider still validates ARN arguments, so computed ARNs need a valid shape.
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-central-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-central-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mlp-test-lake" }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = {
      arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-central-1.amazonaws.com/id/MOCK"
      url = "https://oidc.eks.eu-central-1.amazonaws.com/id/MOCK"
    }
  }
  mock_resource "aws_eks_cluster" {
    defaults = {
      endpoint = "https://MOCK.gr7.eu-central-1.eks.amazonaws.com"
      identity = [{ oidc = [{ issuer = "https://oidc.eks.eu-central-1.amazonaws.com/id/MOCK" }] }]
    }
  }
}

variables {
  name                = "mlp-test"
  region              = "eu-central-1"
  availability_zones  = ["eu-central-1a", "eu-central-1b"]
  bucket_name         = "mlp-test-lake"
  public_access_cidrs = ["203.0.113.0/24"]
  node_min_size       = 2
  node_desired_size   = 3
  node_max_size       = 6
}

run "bucket_is_private_encrypted_versioned" {
  command = plan

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.this.block_public_acls,
      aws_s3_bucket_public_access_block.this.block_public_policy,
      aws_s3_bucket_public_access_block.this.ignore_public_acls,
      aws_s3_bucket_public_access_block.this.restrict_public_buckets,
    ])
    error_message = "every public-access block flag must be true"
  }

  assert {
    condition     = one([for r in aws_s3_bucket_server_side_encryption_configuration.this.rule : one(r.apply_server_side_encryption_by_default).sse_algorithm]) == "aws:kms"
    error_message = "the bucket must be encrypted with KMS by default"
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "bucket versioning must be enabled"
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled (BucketOwnerEnforced)"
  }

  assert {
    condition     = aws_s3_bucket.this.force_destroy == false
    error_message = "force_destroy must default to false"
  }
}

run "node_group_sizes_come_from_variables" {
  command = plan

  assert {
    condition     = aws_eks_node_group.default.scaling_config[0].min_size == 2
    error_message = "min_size must be var.node_min_size"
  }
  assert {
    condition     = aws_eks_node_group.default.scaling_config[0].desired_size == 3
    error_message = "desired_size must be var.node_desired_size"
  }
  assert {
    condition     = aws_eks_node_group.default.scaling_config[0].max_size == 6
    error_message = "max_size must be var.node_max_size"
  }
  assert {
    condition     = aws_eks_cluster.this.encryption_config[0].resources == toset(["secrets"])
    error_message = "Kubernetes secrets must be envelope-encrypted with KMS"
  }
  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].public_access_cidrs == toset(["203.0.113.0/24"])
    error_message = "the API endpoint must be restricted to public_access_cidrs"
  }
  assert {
    condition     = length(aws_subnet.private) == 2 && length(aws_nat_gateway.this) == 1
    error_message = "create_vpc = true must create one private subnet per AZ and a NAT gateway"
  }
}

run "other_sizes_flow_through" {
  command = plan

  variables {
    node_min_size     = 1
    node_desired_size = 1
    node_max_size     = 1
  }

  assert {
    condition     = aws_eks_node_group.default.scaling_config[0].max_size == 1 && aws_eks_node_group.default.scaling_config[0].min_size == 1
    error_message = "node group sizes must follow the variables"
  }
}

run "existing_vpc_creates_no_network" {
  command = plan

  variables {
    create_vpc         = false
    vpc_id             = "vpc-0123456789abcdef0"
    private_subnet_ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  }

  assert {
    condition     = length(aws_vpc.this) == 0 && length(aws_subnet.private) == 0 && length(aws_nat_gateway.this) == 0
    error_message = "create_vpc = false must not create network resources"
  }
  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].subnet_ids == toset(["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"])
    error_message = "the cluster must use the given subnets"
  }
  assert {
    condition     = output.vpc_id == "vpc-0123456789abcdef0"
    error_message = "vpc_id output must be the given VPC"
  }
}

run "outputs_exist" {
  command = plan

  assert {
    condition     = output.kubeconfig_command == "aws eks update-kubeconfig --region eu-central-1 --name mlp-test"
    error_message = "kubeconfig_command output is wrong"
  }
  assert {
    condition     = output.s3_endpoint == "https://s3.eu-central-1.amazonaws.com"
    error_message = "s3_endpoint output is wrong"
  }
  assert {
    condition     = output.bucket_name == "mlp-test-lake" && output.cluster_name == "mlp-test" && output.s3_region == "eu-central-1"
    error_message = "bucket/cluster/region outputs are wrong"
  }
}

run "irsa_trusts_only_the_platform_service_accounts" {
  # apply against the mock provider (nothing leaves the machine) so computed ARNs and the trust policy are known.
  command = apply

  assert {
    condition     = output.platform_role_arn != "" && output.oidc_provider_arn != "" && output.cluster_endpoint != ""
    error_message = "role, OIDC provider and endpoint outputs must be set"
  }
  assert {
    condition = alltrue([
      for sa in ["mlflow", "ray-tune", "spark", "kserve-s3", "platform-deploy"] :
      strcontains(aws_iam_role.platform.assume_role_policy, "system:serviceaccount:ml-platform:${sa}")
    ])
    error_message = "the IRSA trust policy must name every platform service account"
  }
  assert {
    condition     = strcontains(aws_iam_role.platform.assume_role_policy, "system:serviceaccount:kubeflow:pipeline-runner")
    error_message = "the IRSA trust policy must name KFP's pipeline-runner (the pipeline's tasks run as it)"
  }
  assert {
    condition     = !strcontains(aws_iam_role_policy.platform_s3.policy, "\"s3:*\"")
    error_message = "the platform role must not get s3:*"
  }

  assert {
    condition     = strcontains(aws_s3_bucket_policy.this.policy, "aws:SecureTransport")
    error_message = "the bucket policy must deny non-TLS access"
  }
}

run "addons_pinned_network_policy_on_ebs_csi_with_irsa" {
  # apply on the mock provider: the EBS CSI role ARN and its trust policy are computed values.
  command = apply

  assert {
    condition     = aws_eks_addon.vpc_cni.addon_name == "vpc-cni" && aws_eks_addon.vpc_cni.addon_version == var.vpc_cni_addon_version
    error_message = "the VPC CNI add-on must be pinned to var.vpc_cni_addon_version"
  }
  assert {
    condition     = jsondecode(aws_eks_addon.vpc_cni.configuration_values).enableNetworkPolicy == "true"
    error_message = "the VPC CNI must enforce NetworkPolicies (configuration_values enableNetworkPolicy)"
  }
  assert {
    condition     = aws_eks_addon.ebs_csi.addon_name == "aws-ebs-csi-driver" && aws_eks_addon.ebs_csi.addon_version == var.ebs_csi_addon_version
    error_message = "the EBS CSI add-on must be pinned to var.ebs_csi_addon_version"
  }
  assert {
    condition     = aws_eks_addon.ebs_csi.service_account_role_arn == aws_iam_role.ebs_csi.arn
    error_message = "the EBS CSI driver must run with its own IRSA role"
  }
  assert {
    condition     = strcontains(aws_iam_role.ebs_csi.assume_role_policy, "system:serviceaccount:kube-system:ebs-csi-controller-sa")
    error_message = "the EBS CSI role must trust only the driver's controller service account"
  }
  assert {
    condition     = endswith(aws_iam_role_policy_attachment.ebs_csi.policy_arn, ":policy/service-role/AmazonEBSCSIDriverPolicy")
    error_message = "the EBS CSI role needs AmazonEBSCSIDriverPolicy"
  }
}

run "rejects_unpinned_addon_version" {
  command = plan

  variables {
    vpc_cni_addon_version = "latest"
  }

  expect_failures = [var.vpc_cni_addon_version]
}

run "rejects_desired_above_max" {
  command = plan

  variables {
    node_desired_size = 9
    node_max_size     = 4
  }

  expect_failures = [var.node_desired_size]
}

run "rejects_open_api_endpoint" {
  command = plan

  variables {
    public_access_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.public_access_cidrs]
}

run "rejects_existing_vpc_without_subnets" {
  command = plan

  variables {
    create_vpc = false
    vpc_id     = "vpc-0123456789abcdef0"
  }

  expect_failures = [var.private_subnet_ids]
}
