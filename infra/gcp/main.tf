# Skyrelay on GCP: a Cloud Run function (2nd gen) running handlers/gcp/main.py (target `gateway`, streaming ASGI),
# request logs in a CMEK-encrypted GCS bucket, Memorystore (Standard HA, TLS, AUTH) for shared state, and a service
# account whose only project role is roles/aiplatform.user. Its other grants are resource-scoped: create objects in
# the log bucket, read the config bucket, read the two Redis secrets.

locals {
  labels        = { app = var.name }
  redis_ca_path = "/etc/skyrelay-redis-ca"
}

data "google_project" "this" {}

data "google_storage_project_service_account" "gcs" {}

# --- identity --------------------------------------------------------------------------------------------------
resource "google_service_account" "gateway" {
  account_id   = "${var.name}-gateway"
  display_name = "Skyrelay gateway"
  description  = "Runs the gateway function; calls Vertex AI and writes request logs."
}

resource "google_project_iam_member" "vertex_user" {
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = "serviceAccount:${google_service_account.gateway.email}"
}

# --- encryption ------------------------------------------------------------------------------------------------
resource "google_kms_key_ring" "this" {
  name     = "${var.name}-keys"
  location = var.region
}

resource "google_kms_crypto_key" "storage" {
  name            = "${var.name}-storage"
  key_ring        = google_kms_key_ring.this.id
  rotation_period = "7776000s"
  purpose         = "ENCRYPT_DECRYPT"

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "gcs_uses_key" {
  crypto_key_id = google_kms_crypto_key.storage.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# --- buckets ---------------------------------------------------------------------------------------------------
resource "google_storage_bucket" "access_logs" {
  # checkov:skip=CKV_GCP_62:this bucket is the access-log destination; logging it into itself would loop
  name                        = "${var.project_id}-${var.name}-access-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }

  lifecycle_rule {
    condition {
      age = var.log_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_key]
}

resource "google_storage_bucket" "logs" {
  name                        = "${var.project_id}-${var.name}-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "logs-bucket/"
  }

  lifecycle_rule {
    condition {
      age            = var.log_retention_days
      matches_prefix = ["logs/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_key]
}

resource "google_storage_bucket" "config" {
  name                        = "${var.project_id}-${var.name}-config"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "config-bucket/"
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_key]
}

resource "google_storage_bucket_object" "config" {
  count  = var.config_file == null ? 0 : 1
  name   = "skyrelay.yaml"
  bucket = google_storage_bucket.config.name
  source = var.config_file
}

resource "google_storage_bucket_iam_member" "gateway_writes_logs" {
  bucket = google_storage_bucket.logs.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.gateway.email}"
}

resource "google_storage_bucket_iam_member" "gateway_reads_config" {
  bucket = google_storage_bucket.config.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.gateway.email}"
}

# --- network and Memorystore -----------------------------------------------------------------------------------
resource "google_compute_network" "this" {
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "this" {
  name                     = "${var.name}-${var.region}"
  ip_cidr_range            = "10.20.0.0/24"
  region                   = var.region
  network                  = google_compute_network.this.id
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Nothing in this VPC accepts inbound connections except what GCP itself adds for the connector (priority 1000).
resource "google_compute_firewall" "deny_ingress" {
  name      = "${var.name}-deny-ingress"
  network   = google_compute_network.this.name
  direction = "INGRESS"
  priority  = 65534

  deny {
    protocol = "all"
  }

  source_ranges = ["0.0.0.0/0"]

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_vpc_access_connector" "this" {
  name          = "${var.name}-connector"
  region        = var.region
  network       = google_compute_network.this.name
  ip_cidr_range = "10.20.8.0/28"
  min_instances = 2
  max_instances = 3
}

resource "google_redis_instance" "this" {
  name                    = "${var.name}-state"
  display_name            = "Skyrelay shared state"
  tier                    = "STANDARD_HA"
  memory_size_gb          = var.redis_memory_gb
  region                  = var.region
  redis_version           = "REDIS_7_2"
  authorized_network      = google_compute_network.this.id
  connect_mode            = "DIRECT_PEERING"
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"
  labels                  = local.labels

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 3
        minutes = 0
      }
    }
  }
}

# The AUTH string and the server CA reach the function through Secret Manager, never as plain settings.
resource "google_secret_manager_secret" "redis_auth" {
  secret_id = "${var.name}-redis-auth"
  labels    = local.labels
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "redis_auth" {
  secret      = google_secret_manager_secret.redis_auth.id
  secret_data = google_redis_instance.this.auth_string
}

resource "google_secret_manager_secret" "redis_ca" {
  secret_id = "${var.name}-redis-ca"
  labels    = local.labels
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "redis_ca" {
  secret      = google_secret_manager_secret.redis_ca.id
  secret_data = google_redis_instance.this.server_ca_certs[0].cert
}

resource "google_secret_manager_secret_iam_member" "gateway_reads_redis_auth" {
  secret_id = google_secret_manager_secret.redis_auth.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.gateway.email}"
}

resource "google_secret_manager_secret_iam_member" "gateway_reads_redis_ca" {
  secret_id = google_secret_manager_secret.redis_ca.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.gateway.email}"
}

# --- the function ----------------------------------------------------------------------------------------------
resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-${var.name}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "source-bucket/"
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_key]
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = var.source_dir
  output_path = "${path.module}/.terraform/skyrelay-gcp-source.zip"
  excludes    = ["**/__pycache__/**"]
}

resource "google_storage_bucket_object" "source" {
  name   = "skyrelay-${data.archive_file.source.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "gateway" {
  # checkov:skip=CKV_GCP_124:a gateway serves callers outside the VPC; run.invoker IAM or gateway keys authenticate them
  name        = "${var.name}-gateway"
  location    = var.region
  description = "Skyrelay: OpenAI- and Portkey-compatible LLM gateway"
  labels      = local.labels

  build_config {
    runtime     = "python312"
    entry_point = "gateway"
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = "1Gi"
    available_cpu                    = "1"
    timeout_seconds                  = 3600
    max_instance_count               = var.max_instances
    min_instance_count               = 0
    max_instance_request_concurrency = 80
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.gateway.email
    vpc_connector                    = google_vpc_access_connector.this.id
    vpc_connector_egress_settings    = "PRIVATE_RANGES_ONLY"

    environment_variables = {
      SKYRELAY_LOG_SINK  = "gs://${google_storage_bucket.logs.name}/logs"
      SKYRELAY_CONFIG    = "gs://${google_storage_bucket.config.name}/skyrelay.yaml"
      SKYRELAY_REDIS_URL = "rediss://${google_redis_instance.this.host}:${google_redis_instance.this.port}/0?ssl_ca_certs=${local.redis_ca_path}/ca.pem"
      # Without a public invoker, Cloud Run's IAM check is the authentication layer in front of the gateway.
      SKYRELAY_ALLOW_UNAUTHENTICATED = var.allow_unauthenticated ? "false" : "true"
      GOOGLE_CLOUD_PROJECT           = var.project_id
    }

    secret_environment_variables {
      key        = "SKYRELAY_REDIS_PASSWORD"
      project_id = var.project_id
      secret     = google_secret_manager_secret.redis_auth.secret_id
      version    = "latest"
    }

    secret_volumes {
      mount_path = local.redis_ca_path
      project_id = var.project_id
      secret     = google_secret_manager_secret.redis_ca.secret_id
      versions {
        version = "latest"
        path    = "ca.pem"
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.gateway_reads_redis_auth,
    google_secret_manager_secret_iam_member.gateway_reads_redis_ca,
    google_secret_manager_secret_version.redis_auth,
    google_secret_manager_secret_version.redis_ca,
  ]
}

# Who may call it: IAM (invoker_members) by default; the whole internet only when asked, behind gateway keys.
resource "google_cloud_run_service_iam_member" "invokers" {
  for_each = toset(var.invoker_members)
  location = var.region
  service  = google_cloudfunctions2_function.gateway.name
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_service_iam_member" "public" {
  count    = var.allow_unauthenticated ? 1 : 0
  location = var.region
  service  = google_cloudfunctions2_function.gateway.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
