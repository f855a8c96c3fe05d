output "gateway_url" {
  description = "OpenAI base URL: <gateway_url>/v1 (host.json sets an empty route prefix)."
  value       = "https://${azurerm_function_app_flex_consumption.gateway.default_hostname}"
}

output "function_app_name" {
  description = "Deploy the bundle with: az functionapp deployment source config-zip --name <this> ..."
  value       = azurerm_function_app_flex_consumption.gateway.name
}

output "config_uri" {
  description = "Upload the config store here (az storage blob upload --auth-mode login ...)."
  value       = "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.config.name}/skyrelay.yaml"
}

output "identity_client_id" {
  description = "The gateway's managed identity (Cognitive Services OpenAI User on the configured account)."
  value       = azurerm_user_assigned_identity.gateway.client_id
}
