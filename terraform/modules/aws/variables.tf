variable "name" {
  description = "Name prefix for every resource (EKS cluster name, IAM roles, VPC). Lower case, 3-32 chars."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "AWS region (also used to build the S3 endpoint output)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like eu-central-1."
  }
}

variable "kubernetes_version" {
  description = "EKS control-plane version (major.minor)."
  type        = string
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be major.minor, e.g. 1.34."
  }
}

# --- network: create a VPC, or bring your own -----------------------------------------------------
variable "create_vpc" {
  description = "Create a VPC with public + private subnets and one NAT gateway. false: pass vpc_id and private_subnet_ids."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR of the created VPC (ignored when create_vpc = false)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR of /20 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones for the created subnets (2 or 3)."
  type        = list(string)
  default     = ["eu-central-1a", "eu-central-1b"]

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "EKS needs subnets in at least 2 availability zones; give 2 or 3."
  }
}

variable "vpc_id" {
  description = "Existing VPC id (only when create_vpc = false)."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "private_subnet_ids" {
  description = "Existing private subnet ids in >= 2 AZs (only when create_vpc = false)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "private_subnet_ids must look like subnet-0123456789abcdef0."
  }

  validation {
    condition     = var.create_vpc || length(var.private_subnet_ids) >= 2
    error_message = "With create_vpc = false give at least 2 private_subnet_ids (and vpc_id)."
  }
}

# --- control-plane access ---------------------------------------------------------------------------
variable "endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly (restricted to public_access_cidrs)."
  type        = bool
  default     = true
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint. Set it to your office/VPN ranges."
  type        = list(string)

  validation {
    condition     = length(var.public_access_cidrs) > 0 && alltrue([for c in var.public_access_cidrs : can(cidrnetmask(c))])
    error_message = "public_access_cidrs must be a non-empty list of IPv4 CIDRs."
  }

  validation {
    condition     = !contains(var.public_access_cidrs, "0.0.0.0/0")
    error_message = "0.0.0.0/0 would open the Kubernetes API to the internet; list your own ranges."
  }
}

# --- nodes ----------------------------------------------------------------------------------------
variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["m6i.xlarge"]

  validation {
    condition     = length(var.node_instance_types) > 0
    error_message = "node_instance_types must not be empty."
  }
}

variable "node_min_size" {
  description = "Minimum node count."
  type        = number
  default     = 2

  validation {
    condition     = var.node_min_size >= 1 && floor(var.node_min_size) == var.node_min_size
    error_message = "node_min_size must be a whole number >= 1."
  }
}

variable "node_desired_size" {
  description = "Desired node count (between node_min_size and node_max_size)."
  type        = number
  default     = 3

  validation {
    condition     = var.node_desired_size >= var.node_min_size && var.node_desired_size <= var.node_max_size
    error_message = "node_desired_size must lie between node_min_size and node_max_size."
  }
}

variable "node_max_size" {
  description = "Maximum node count."
  type        = number
  default     = 5

  validation {
    condition     = var.node_max_size >= var.node_min_size && var.node_max_size <= 100
    error_message = "node_max_size must be >= node_min_size and <= 100."
  }
}

variable "node_disk_size_gb" {
  description = "Root volume size of each node in GiB."
  type        = number
  default     = 80

  validation {
    condition     = var.node_disk_size_gb >= 20 && var.node_disk_size_gb <= 2000
    error_message = "node_disk_size_gb must be between 20 and 2000."
  }
}

# --- storage + workload identity ------------------------------------------------------------------
variable "bucket_name" {
  description = "Globally unique S3 bucket for the lake, MLflow artifacts and serving bundles."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !strcontains(var.bucket_name, "..")
    error_message = "bucket_name must be a valid S3 bucket name (3-63 chars, lower case, digits, '.', '-')."
  }
}

variable "bucket_force_destroy" {
  description = "Allow `terraform destroy` to delete a non-empty bucket. Keep false outside throw-away clusters."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days a replaced object version is kept before it expires."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be >= 1."
  }
}

variable "platform_namespace" {
  description = "Kubernetes namespace of the platform's pods (manifests/ overlays use ml-platform)."
  type        = string
  default     = "ml-platform"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.platform_namespace))
    error_message = "platform_namespace must be a DNS-1123 label."
  }
}

variable "kfp_namespace" {
  description = "Namespace of standalone Kubeflow Pipelines: its tasks run there as pipeline-runner, which manifests/deploy.sh annotates with the platform's S3 role."
  type        = string
  default     = "kubeflow"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.kfp_namespace))
    error_message = "kfp_namespace must be a DNS-1123 label."
  }
}

variable "platform_service_accounts" {
  description = "Service accounts in platform_namespace that may assume the S3 role (IRSA): exactly those manifests/components/aws annotates."
  type        = list(string)
  default     = ["mlflow", "ray-tune", "spark", "kserve-s3", "platform-deploy"]

  validation {
    condition     = length(var.platform_service_accounts) > 0 && alltrue([for s in var.platform_service_accounts : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", s))])
    error_message = "platform_service_accounts must be a non-empty list of DNS-1123 names."
  }
}

# --- add-ons (check what a Kubernetes version offers: aws eks describe-addon-versions --kubernetes-version 1.34
#     --addon-name vpc-cni) ---------------------------------------------------------------------------------------
variable "vpc_cni_addon_version" {
  description = "Pinned version of the vpc-cni add-on (NetworkPolicy enforcement needs >= v1.14)."
  type        = string
  default     = "v1.20.4-eksbuild.1"

  validation {
    condition     = can(regex("^v1\\.([2-9][0-9]|1[4-9])\\.[0-9]+-eksbuild\\.[0-9]+$", var.vpc_cni_addon_version))
    error_message = "vpc_cni_addon_version must be an exact add-on version >= v1.14, e.g. v1.20.4-eksbuild.1."
  }
}

variable "ebs_csi_addon_version" {
  description = "Pinned version of the aws-ebs-csi-driver add-on."
  type        = string
  default     = "v1.51.1-eksbuild.1"

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+-eksbuild\\.[0-9]+$", var.ebs_csi_addon_version))
    error_message = "ebs_csi_addon_version must be an exact add-on version, e.g. v1.51.1-eksbuild.1."
  }
}

variable "log_retention_days" {
  description = "Retention of the EKS control-plane logs in CloudWatch."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's allowed values (e.g. 30, 90, 365)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
