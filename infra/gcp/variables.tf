variable "project_id" {
  description = "GCP project that hosts the gateway (and calls Vertex AI)."
  type        = string
}

variable "region" {
  description = "Region of the function, buckets and Memorystore; next to the Vertex AI models it calls."
  type        = string
  default     = "us-central1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "skyrelay"
}

variable "source_dir" {
  description = "Folder built by `skyrelay bundle --cloud gcp` (main.py, requirements.txt, core/)."
  type        = string
  default     = "../../build/gcp"
}

variable "config_file" {
  description = "Config store document uploaded as gs://<config bucket>/skyrelay.yaml; null leaves the object to you."
  type        = string
  default     = null
}

variable "invoker_members" {
  description = "Principals allowed to call the function (roles/run.invoker), e.g. serviceAccount:edge@... ; with allow_unauthenticated the gateway's own keys authenticate."
  type        = list(string)
  default     = []
}

variable "allow_unauthenticated" {
  description = "Let anyone reach the function URL; every /v1 route then relies on gateway API keys from the config store."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Request logs under logs/ are deleted after this many days."
  type        = number
  default     = 90
}

variable "max_instances" {
  description = "Upper bound on function instances."
  type        = number
  default     = 20
}

variable "redis_memory_gb" {
  description = "Memorystore capacity."
  type        = number
  default     = 1
}
