# Example root: one EKS cluster + platform bucket in eu-central-1.
#   cp terraform.tfvars.example terraform.tfvars   # then edit
#   task cluster:plan CLOUD=aws && task cluster:apply CLOUD=aws
terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # Remote state: keep state out of git and out of laptops. Create the state bucket (versioned, encrypted) once,
  # then uncomment and run `terraform init -migrate-state`. S3-native locking needs Terraform >= 1.10.
  # backend "s3" {
  #   bucket       = "my-org-terraform-state"
  #   key          = "kfserve-bundle/aws/terraform.tfstate"
  #   region       = "eu-central-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { "managed-by" = "terraform", "project" = "kfserve-bundle" }
  }
}

module "platform" {
  source = "../../modules/aws"

  name                = var.name
  region              = var.region
  availability_zones  = var.availability_zones
  bucket_name         = var.bucket_name
  public_access_cidrs = var.public_access_cidrs
  node_instance_types = var.node_instance_types
  node_min_size       = var.node_min_size
  node_desired_size   = var.node_desired_size
  node_max_size       = var.node_max_size
}
