# --- EKS control plane ----------------------------------------------------------------------------
resource "aws_iam_role" "cluster" {
  name = "${var.name}-eks-cluster"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "eks.amazonaws.com" }, Action = ["sts:AssumeRole", "sts:TagSession"] }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_cloudwatch_log_group" "cluster" {
  # EKS writes its control-plane logs here; created first so retention and encryption apply.
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_eks_cluster" "this" {
  #checkov:skip=CKV_AWS_38:public_access_cidrs is a required variable whose validation rejects 0.0.0.0/0 (covered by terraform test); checkov cannot see variable validations.
  #checkov:skip=CKV_AWS_39:The public endpoint is opt-out (endpoint_public_access) and restricted to public_access_cidrs, which may not be 0.0.0.0/0.
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  vpc_config {
    subnet_ids              = local.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = var.endpoint_public_access
    public_access_cidrs     = var.public_access_cidrs
  }

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.this.arn
    }
  }

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  tags                      = local.tags

  depends_on = [aws_iam_role_policy_attachment.cluster, aws_cloudwatch_log_group.cluster]
}

# --- managed node group ---------------------------------------------------------------------------
resource "aws_iam_role" "node" {
  name = "${var.name}-eks-node"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each   = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])
  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_eks_node_group" "default" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-default"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = local.private_subnet_ids
  instance_types  = var.node_instance_types
  disk_size       = var.node_disk_size_gb
  capacity_type   = "ON_DEMAND"

  scaling_config {
    min_size     = var.node_min_size
    desired_size = var.node_desired_size
    max_size     = var.node_max_size
  }

  update_config {
    max_unavailable = 1
  }

  labels = { "platform/pool" = "default" }
  tags   = local.tags

  depends_on = [aws_iam_role_policy_attachment.node]

  lifecycle {
    # A cluster autoscaler owns desired_size once the cluster runs.
    ignore_changes = [scaling_config[0].desired_size]
  }
}

# --- IRSA: the platform's service accounts get S3 access without static keys ----------------------
resource "aws_iam_openid_connect_provider" "eks" {
  url            = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
  tags           = local.tags
}

locals {
  oidc_host = replace(aws_iam_openid_connect_provider.eks.url, "https://", "")
  # IRSA: which Kubernetes service accounts may assume each role (the platform's pods, the EBS CSI controller).
  irsa_subjects = {
    # KFP's pipeline-runner too: the pipeline's tasks read the lake and MLflow's artifacts from KFP's namespace.
    platform = concat([for sa in var.platform_service_accounts : "system:serviceaccount:${var.platform_namespace}:${sa}"],
    ["system:serviceaccount:${var.kfp_namespace}:pipeline-runner"])
    ebs_csi = ["system:serviceaccount:kube-system:ebs-csi-controller-sa"]
  }
  irsa_trust = { for role, subjects in local.irsa_subjects : role => jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = aws_iam_openid_connect_provider.eks.arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.oidc_host}:aud" = "sts.amazonaws.com"
          "${local.oidc_host}:sub" = subjects
        }
      }
    }]
  }) }
}

resource "aws_iam_role" "platform" {
  name               = "${var.name}-platform-s3"
  assume_role_policy = local.irsa_trust["platform"]
  tags               = local.tags
}

resource "aws_iam_role_policy" "platform_s3" {
  name = "platform-bucket"
  role = aws_iam_role.platform.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "List", Effect = "Allow", Action = ["s3:ListBucket", "s3:GetBucketLocation"], Resource = aws_s3_bucket.this.arn },
      {
        Sid      = "Objects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        Resource = "${aws_s3_bucket.this.arn}/*"
      },
      { Sid = "Key", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = aws_kms_key.this.arn },
    ]
  })
}
