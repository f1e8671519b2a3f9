# --- EKS add-ons, pinned: the VPC CNI with NetworkPolicy enforcement, the EBS CSI driver for PVCs ------------------
# Without enableNetworkPolicy the CNI accepts NetworkPolicies and enforces none (the platform's default-deny would
# be decoration); without the EBS CSI driver no PVC binds (Kubeflow Pipelines' MySQL and MinIO need them).
resource "aws_eks_addon" "vpc_cni" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "vpc-cni"
  addon_version               = var.vpc_cni_addon_version
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  configuration_values        = jsonencode({ enableNetworkPolicy = "true" })
  tags                        = local.tags
}

resource "aws_eks_addon" "ebs_csi" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "aws-ebs-csi-driver"
  addon_version               = var.ebs_csi_addon_version
  service_account_role_arn    = aws_iam_role.ebs_csi.arn
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = local.tags

  # The controller's pods need nodes; the add-on stays DEGRADED (and the apply waits) until they exist.
  depends_on = [aws_eks_node_group.default]
}

# IRSA for the EBS CSI controller (its service account in kube-system), with AWS's managed driver policy.
resource "aws_iam_role" "ebs_csi" {
  name               = "${var.name}-ebs-csi"
  assume_role_policy = local.irsa_trust["ebs_csi"]
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.ebs_csi.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}
