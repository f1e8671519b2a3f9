variable "name" {
  description = "Cluster name / resource prefix."
  type        = string
  default     = "ml-platform"
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-central-1"
}

variable "availability_zones" {
  description = "Two or three AZs of var.region."
  type        = list(string)
  default     = ["eu-central-1a", "eu-central-1b"]
}

variable "bucket_name" {
  description = "Globally unique bucket name for lake + artifacts."
  type        = string
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API."
  type        = list(string)
}

variable "node_instance_types" {
  description = "Node instance types."
  type        = list(string)
  default     = ["m6i.xlarge"]
}

variable "node_min_size" {
  description = "Minimum node count."
  type        = number
  default     = 2
}

variable "node_desired_size" {
  description = "Desired node count."
  type        = number
  default     = 3
}

variable "node_max_size" {
  description = "Maximum node count."
  type        = number
  default     = 5
}
