variable "name" {
  description = "Prefix of every resource name (lowercase letters and digits: it also names the storage account)."
  type        = string
  default     = "skyrelay"
}

variable "location" {
  description = "Azure region, next to the Azure OpenAI resource the gateway calls."
  type        = string
  default     = "eastus2"
}

variable "openai_account_id" {
  description = "Resource id of the Azure OpenAI (Cognitive Services) account the gateway may call."
  type        = string
}

variable "python_version" {
  description = "Functions Python version; must match the interpreter `skyrelay bundle --cloud azure` built for."
  type        = string
  default     = "3.11"
}

variable "max_instances" {
  description = "Flex Consumption scale-out limit."
  type        = number
  default     = 40
}

variable "instance_memory_mb" {
  description = "Flex Consumption instance size."
  type        = number
  default     = 2048
}

variable "log_retention_days" {
  description = "Request logs are deleted after this many days (lifecycle management on the logs container)."
  type        = number
  default     = 90
}

variable "redis_sku" {
  description = "Azure Managed Redis SKU (Azure Cache for Redis is retiring)."
  type        = string
  default     = "Balanced_B0"
}
