variable "name" {
  description = "Name prefix for the datacenter, cluster, node pool and bucket. Lower case, 3-32 chars."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "location" {
  description = "IONOS location of the datacenter and node pool, e.g. de/fra, de/txl."
  type        = string
  default     = "de/fra"

  validation {
    condition     = can(regex("^[a-z]{2}/[a-z]{3}(/[a-z0-9]+)?$", var.location))
    error_message = "location must look like de/fra."
  }
}

variable "k8s_version" {
  description = "Managed Kubernetes version (major.minor.patch) of the cluster and node pool."
  type        = string
  default     = "1.34.1"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}\\.[0-9]+$", var.k8s_version))
    error_message = "k8s_version must be major.minor.patch, e.g. 1.34.1."
  }
}

variable "api_subnet_allow_list" {
  description = "CIDRs allowed to reach the Kubernetes API (empty would mean unrestricted, so at least one is required)."
  type        = list(string)

  validation {
    condition     = length(var.api_subnet_allow_list) > 0 && alltrue([for c in var.api_subnet_allow_list : can(cidrnetmask(c))])
    error_message = "api_subnet_allow_list must be a non-empty list of IPv4 CIDRs."
  }

  validation {
    condition     = !contains(var.api_subnet_allow_list, "0.0.0.0/0")
    error_message = "0.0.0.0/0 would open the Kubernetes API to the internet; list your own ranges."
  }
}

variable "maintenance_day" {
  description = "Day of the week for cluster and node pool maintenance."
  type        = string
  default     = "Sunday"

  validation {
    condition     = contains(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"], var.maintenance_day)
    error_message = "maintenance_day must be a weekday name such as Sunday."
  }
}

variable "maintenance_time" {
  description = "UTC clock time for maintenance, HH:MM:SSZ."
  type        = string
  default     = "03:00:00Z"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$", var.maintenance_time))
    error_message = "maintenance_time must look like 03:00:00Z."
  }
}

# --- node pool ------------------------------------------------------------------------------------
variable "node_count" {
  description = "Initial node count (autoscaling keeps it between node_min_count and node_max_count)."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= var.node_min_count && var.node_count <= var.node_max_count
    error_message = "node_count must lie between node_min_count and node_max_count."
  }
}

variable "node_min_count" {
  description = "Autoscaling minimum."
  type        = number
  default     = 2

  validation {
    condition     = var.node_min_count >= 1
    error_message = "node_min_count must be >= 1."
  }
}

variable "node_max_count" {
  description = "Autoscaling maximum."
  type        = number
  default     = 5

  validation {
    condition     = var.node_max_count >= var.node_min_count && var.node_max_count <= 100
    error_message = "node_max_count must be >= node_min_count and <= 100."
  }
}

variable "node_cores" {
  description = "vCPUs per node."
  type        = number
  default     = 4

  validation {
    condition     = var.node_cores >= 2
    error_message = "node_cores must be >= 2 (Spark, Ray and KServe share the nodes)."
  }
}

variable "node_ram_mb" {
  description = "RAM per node in MB (multiple of 1024)."
  type        = number
  default     = 16384

  validation {
    condition     = var.node_ram_mb >= 4096 && var.node_ram_mb % 1024 == 0
    error_message = "node_ram_mb must be >= 4096 and a multiple of 1024."
  }
}

variable "node_storage_gb" {
  description = "Volume size per node in GB."
  type        = number
  default     = 100

  validation {
    condition     = var.node_storage_gb > 10
    error_message = "node_storage_gb must be greater than 10."
  }
}

variable "node_storage_type" {
  description = "SSD or HDD."
  type        = string
  default     = "SSD"

  validation {
    condition     = contains(["SSD", "HDD"], var.node_storage_type)
    error_message = "node_storage_type must be SSD or HDD."
  }
}

variable "node_availability_zone" {
  description = "Compute availability zone: AUTO, ZONE_1 or ZONE_2."
  type        = string
  default     = "AUTO"

  validation {
    condition     = contains(["AUTO", "ZONE_1", "ZONE_2"], var.node_availability_zone)
    error_message = "node_availability_zone must be AUTO, ZONE_1 or ZONE_2."
  }
}

variable "node_cpu_family" {
  description = "CPU family of the nodes (must be offered at var.location)."
  type        = string
  default     = "INTEL_SKYLAKE"

  validation {
    condition     = can(regex("^[A-Z][A-Z0-9_]+$", var.node_cpu_family))
    error_message = "node_cpu_family must be an IONOS CPU family name such as INTEL_SKYLAKE."
  }
}

# --- object storage -------------------------------------------------------------------------------
variable "bucket_name" {
  description = "Globally unique bucket for the lake, MLflow artifacts and serving bundles."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 chars, lower case, digits, '.', '-')."
  }
}

variable "s3_region" {
  description = "IONOS Object Storage region of the contract-owned bucket (the provider supports only those)."
  type        = string
  default     = "eu-central-3"

  validation {
    condition     = can(regex("^[a-z]{2}-[a-z]+-[0-9]$", var.s3_region))
    error_message = "s3_region must look like eu-central-3."
  }
}

variable "s3_user_id" {
  description = "UUID of the (technical) IONOS user that owns the platform's S3 key. Create that user outside this module."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.s3_user_id))
    error_message = "s3_user_id must be a user UUID."
  }
}

variable "contract_number" {
  description = "IONOS contract number: the bucket policy names the platform user as arn:aws:iam:::user/<contract>:<user UUID>."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{5,12}$", var.contract_number))
    error_message = "contract_number must be the numeric IONOS contract number."
  }
}
