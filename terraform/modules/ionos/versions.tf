terraform {
  required_version = ">= 1.9"

  required_providers {
    ionoscloud = {
      source  = "ionos-cloud/ionoscloud"
      version = ">= 6.7.0, < 7.0.0"
    }
  }
}
