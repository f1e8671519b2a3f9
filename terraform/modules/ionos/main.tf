# IONOS Managed Kubernetes + node pool in its own datacenter, a private encrypted bucket and an S3 key for the platform.
# The ionoscloud provider is not on this machine's mirror: the module is checked offline by `terraform fmt`,
# an HCL parse with assertions (tests/cluster/test_terraform.py) and checkov.
#
# Provider credentials (the root's provider block, from the environment only): IONOS_TOKEN for the Cloud API, and
# IONOS_S3_ACCESS_KEY / IONOS_S3_SECRET_KEY for the ionoscloud_s3_* resources below. That S3 key must exist before
# the apply (create it once in the DCD for the user running terraform): the key this module creates
# (ionoscloud_s3_key.platform) appears only during the apply and belongs to the platform's own user.

resource "ionoscloud_datacenter" "this" {
  name                = var.name
  location            = var.location
  description         = "kfserve-bundle platform nodes"
  sec_auth_protection = false
}

resource "ionoscloud_k8s_cluster" "this" {
  name                  = var.name
  k8s_version           = var.k8s_version
  api_subnet_allow_list = var.api_subnet_allow_list

  maintenance_window {
    day_of_the_week = var.maintenance_day
    time            = var.maintenance_time
  }
}

resource "ionoscloud_k8s_node_pool" "default" {
  name              = "${var.name}-default"
  k8s_cluster_id    = ionoscloud_k8s_cluster.this.id
  datacenter_id     = ionoscloud_datacenter.this.id
  k8s_version       = ionoscloud_k8s_cluster.this.k8s_version
  cpu_family        = var.node_cpu_family
  availability_zone = var.node_availability_zone
  storage_type      = var.node_storage_type
  node_count        = var.node_count
  cores_count       = var.node_cores
  ram_size          = var.node_ram_mb
  storage_size      = var.node_storage_gb

  auto_scaling {
    min_node_count = var.node_min_count
    max_node_count = var.node_max_count
  }

  maintenance_window {
    day_of_the_week = var.maintenance_day
    time            = var.maintenance_time
  }

  labels = { "platform/pool" = "default" }

  lifecycle {
    # The autoscaler owns node_count once the pool runs.
    ignore_changes = [node_count]
  }
}

# --- object storage -------------------------------------------------------------------------------
resource "ionoscloud_s3_bucket" "this" {
  name          = var.bucket_name
  region        = var.s3_region
  force_destroy = false
}

resource "ionoscloud_s3_bucket_public_access_block" "this" {
  bucket                  = ionoscloud_s3_bucket.this.name
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "ionoscloud_s3_bucket_versioning" "this" {
  bucket = ionoscloud_s3_bucket.this.name
  versioning_configuration {
    status = "Enabled"
  }
}

resource "ionoscloud_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = ionoscloud_s3_bucket.this.name
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# The bucket is contract-owned; the platform's technical user (not an administrator) gets read/write on it only.
resource "ionoscloud_s3_bucket_policy" "this" {
  bucket = ionoscloud_s3_bucket.this.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "PlatformUserReadWrite"
      Effect    = "Allow"
      Principal = ["arn:aws:iam:::user/${var.contract_number}:${var.s3_user_id}"]
      Action    = ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
      Resource  = ["arn:aws:s3:::${ionoscloud_s3_bucket.this.name}", "arn:aws:s3:::${ionoscloud_s3_bucket.this.name}/*"]
    }]
  })
  depends_on = [ionoscloud_s3_bucket_public_access_block.this]
}

# The platform's S3 credentials. The secret lands in the (remote, encrypted) state and in the sensitive output
# only; put it into the cluster with `kubectl create secret` (README "Deploy to a cluster"), never into git.
resource "ionoscloud_s3_key" "platform" {
  user_id = var.s3_user_id
  active  = true
}
