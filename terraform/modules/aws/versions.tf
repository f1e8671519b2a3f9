terraform {
  # Cross-variable validation (var.node_min_size <= var.node_desired_size) needs Terraform >= 1.9.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100.0, < 6.0.0"
    }
  }
}
