output "gateway_url" {
  description = "OpenAI base URL: <gateway_url>/v1"
  value       = google_cloudfunctions2_function.gateway.url
}

output "log_bucket" {
  description = "Request logs land under gs://<log_bucket>/logs/"
  value       = google_storage_bucket.logs.name
}

output "config_uri" {
  description = "Upload the config store here (gcloud storage cp skyrelay.yaml <config_uri>)."
  value       = "gs://${google_storage_bucket.config.name}/skyrelay.yaml"
}

output "service_account" {
  description = "The gateway's identity: roles/aiplatform.user on the project, nothing else project-wide."
  value       = google_service_account.gateway.email
}
