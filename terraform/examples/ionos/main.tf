# Example root: IONOS Managed Kubernetes + platform bucket. Credentials come from the environment only, never from
# files in git (`task cluster:plan CLOUD=ionos` refuses to start without them):
#   IONOS_TOKEN                               Cloud API token (or IONOS_USERNAME / IONOS_PASSWORD)
#   IONOS_S3_ACCESS_KEY, IONOS_S3_SECRET_KEY  an Object Storage key of the user running terraform, created once in
#                                             the DCD: the provider creates the bucket with it (the module's own
#                                             key, for the platform, cannot: it exists only after the apply)
#   cp terraform.tfvars.example terraform.tfvars   # then edit
#   task cluster:plan CLOUD=ionos && task cluster:apply CLOUD=ionos
terraform {
  required_version = ">= 1.9"

  required_providers {
    ionoscloud = {
      source  = "ionos-cloud/ionoscloud"
      version = "~> 6.7"
    }
  }

  # Remote state in an IONOS Object Storage bucket through the S3 backend (create it once, versioned).
  # Uncomment, export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for that bucket, run `terraform init -migrate-state`.
  # backend "s3" {
  #   bucket                      = "my-org-terraform-state"
  #   key                         = "kfserve-bundle/ionos/terraform.tfstate"
  #   region                      = "eu-central-3"
  #   endpoints                   = { s3 = "https://s3.eu-central-3.ionoscloud.com" }
  #   skip_credentials_validation = true
  #   skip_region_validation      = true
  #   skip_requesting_account_id  = true
  #   skip_s3_checksum            = true
  #   use_path_style              = true
  # }
}

# token, s3_access_key and s3_secret_key come from the environment variables above; only the region is configuration, and it
# must be the bucket's.
provider "ionoscloud" {
  s3_region = var.s3_region
}

module "platform" {
  source = "../../modules/ionos"

  name                  = var.name
  location              = var.location
  k8s_version           = var.k8s_version
  api_subnet_allow_list = var.api_subnet_allow_list
  bucket_name           = var.bucket_name
  s3_region             = var.s3_region
  s3_user_id            = var.s3_user_id
  contract_number       = var.contract_number
  node_count            = var.node_count
  node_min_count        = var.node_min_count
  node_max_count        = var.node_max_count
}
