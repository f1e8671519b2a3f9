variable "name" {
  description = "Cluster name / resource prefix."
  type        = string
  default     = "ml-platform"
}

variable "location" {
  description = "IONOS location."
  type        = string
  default     = "de/fra"
}

variable "k8s_version" {
  description = "Managed Kubernetes version."
  type        = string
  default     = "1.34.1"
}

variable "api_subnet_allow_list" {
  description = "CIDRs allowed to reach the Kubernetes API."
  type        = list(string)
}

variable "bucket_name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "s3_user_id" {
  description = "UUID of the IONOS user owning the platform's S3 key."
  type        = string
}

variable "node_count" {
  description = "Initial node count."
  type        = number
  default     = 3
}

variable "node_min_count" {
  description = "Autoscaling minimum."
  type        = number
  default     = 2
}

variable "node_max_count" {
  description = "Autoscaling maximum."
  type        = number
  default     = 5
}

variable "s3_region" {
  description = "IONOS Object Storage region of the bucket (provider and module)."
  type        = string
  default     = "eu-central-3"
}

variable "contract_number" {
  description = "IONOS contract number (bucket policy principal of the platform user)."
  type        = string
}
