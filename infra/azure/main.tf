# Skyrelay on Azure: a Flex Consumption function app running handlers/azure/function_app.py (object `app`),
# request logs in Blob storage (TLS 1.2, no public or shared-key access), Azure Managed Redis (TLS only) for shared
# state, and one user-assigned managed identity. Its only role on an AI resource is "Cognitive Services OpenAI
# User" on the configured OpenAI account; its other grants are data-plane roles scoped to its own containers.

locals {
  compact_name = lower(replace(var.name, "-", ""))
  tags         = { app = var.name }
}

resource "azurerm_resource_group" "this" {
  name     = "${var.name}-gateway"
  location = var.location
  tags     = local.tags
}

# --- identity --------------------------------------------------------------------------------------------------
resource "azurerm_user_assigned_identity" "gateway" {
  name                = "${var.name}-gateway"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  tags                = local.tags
}

resource "azurerm_role_assignment" "openai_user" {
  scope                = var.openai_account_id
  role_definition_name = "Cognitive Services OpenAI User"
  principal_id         = azurerm_user_assigned_identity.gateway.principal_id
  principal_type       = "ServicePrincipal"
}

# --- storage: deployment package, config store, request logs ---------------------------------------------------
resource "azurerm_storage_account" "this" {
  # checkov:skip=CKV_AZURE_33:no queues are used; queue logging has nothing to record
  # checkov:skip=CKV_AZURE_206:LRS keeps logs in the gateway's region; choose GRS/ZRS per data-residency policy
  # checkov:skip=CKV_AZURE_59:Flex Consumption reaches its package over the public endpoint; shared keys are off
  # checkov:skip=CKV_AZURE_35:see CKV_AZURE_59 (network rules would block the Functions platform)
  # checkov:skip=CKV2_AZURE_33:private endpoints need a VNet-integrated plan; out of scope for this module
  # checkov:skip=CKV2_AZURE_1:Microsoft-managed keys; add a customer_managed_key block where policy requires CMK
  # checkov:skip=CKV_AZURE_43:the name is lowercase letters and digits, 22 characters, by construction below
  name                            = "${substr(local.compact_name, 0, 14)}${substr(md5(azurerm_resource_group.this.id), 0, 8)}"
  resource_group_name             = azurerm_resource_group.this.name
  location                        = azurerm_resource_group.this.location
  account_tier                    = "Standard"
  account_replication_type        = "LRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  shared_access_key_enabled       = false
  default_to_oauth_authentication = true
  local_user_enabled              = false
  tags                            = local.tags

  blob_properties {
    versioning_enabled = true
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  sas_policy {
    expiration_period = "01.00:00:00"
  }
}

# Blob reads, writes and deletes (who read which log) go to Log Analytics.
resource "azurerm_log_analytics_workspace" "this" {
  name                = "${var.name}-logs"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  sku                 = "PerGB2018"
  retention_in_days   = 90
  tags                = local.tags
}

resource "azurerm_monitor_diagnostic_setting" "blob" {
  name                       = "${var.name}-blob-audit"
  target_resource_id         = "${azurerm_storage_account.this.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category = "StorageRead"
  }

  enabled_log {
    category = "StorageWrite"
  }

  enabled_log {
    category = "StorageDelete"
  }
}

resource "azurerm_storage_container" "package" {
  # checkov:skip=CKV2_AZURE_21:reads are audited by azurerm_monitor_diagnostic_setting.blob; storage insights needs a shared key (disabled)
  name                  = "deployment"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "logs" {
  # checkov:skip=CKV2_AZURE_21:reads are audited by azurerm_monitor_diagnostic_setting.blob; storage insights needs a shared key (disabled)
  name                  = "logs"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "config" {
  # checkov:skip=CKV2_AZURE_21:reads are audited by azurerm_monitor_diagnostic_setting.blob; storage insights needs a shared key (disabled)
  name                  = "config"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_storage_management_policy" "logs" {
  storage_account_id = azurerm_storage_account.this.id
  rule {
    name    = "expire-request-logs"
    enabled = true
    filters {
      blob_types   = ["blockBlob", "appendBlob"]
      prefix_match = ["logs/"]
    }
    actions {
      base_blob {
        delete_after_days_since_creation_greater_than = var.log_retention_days
      }
      version {
        delete_after_days_since_creation = 7
      }
    }
  }
}

# The function host reads its package and the gateway writes logs and reads its config with the identity.
resource "azurerm_role_assignment" "package_owner" {
  scope                = azurerm_storage_container.package.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.gateway.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "logs_writer" {
  scope                = azurerm_storage_container.logs.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.gateway.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "config_reader" {
  scope                = azurerm_storage_container.config.id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.gateway.principal_id
  principal_type       = "ServicePrincipal"
}

# --- shared state ----------------------------------------------------------------------------------------------
resource "azurerm_managed_redis" "this" {
  name                      = "${var.name}-state"
  resource_group_name       = azurerm_resource_group.this.name
  location                  = azurerm_resource_group.this.location
  sku_name                  = var.redis_sku
  high_availability_enabled = true
  tags                      = local.tags

  default_database {
    access_keys_authentication_enabled = true
    client_protocol                    = "Encrypted"
    clustering_policy                  = "EnterpriseCluster"
    eviction_policy                    = "VolatileLRU"
  }
}

# --- the function app ------------------------------------------------------------------------------------------
resource "azurerm_service_plan" "this" {
  # checkov:skip=CKV_AZURE_225:Flex Consumption (FC1) has no zone-balancing plan setting; instances are platform-placed
  # checkov:skip=CKV_AZURE_212:Flex Consumption scales per request from zero; there is no worker count to pin
  name                = "${var.name}-plan"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = local.tags
}

resource "azurerm_function_app_flex_consumption" "gateway" {
  # checkov:skip=CKV_AZURE_221:public network access is the point of a gateway; callers authenticate with gateway keys
  name                              = "${var.name}-gateway-${substr(md5(azurerm_resource_group.this.id), 0, 6)}"
  resource_group_name               = azurerm_resource_group.this.name
  location                          = azurerm_resource_group.this.location
  service_plan_id                   = azurerm_service_plan.this.id
  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.package.name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.gateway.id
  runtime_name                      = "python"
  runtime_version                   = var.python_version
  maximum_instance_count            = var.max_instances
  instance_memory_in_mb             = var.instance_memory_mb
  https_only                        = true
  tags                              = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.gateway.id]
  }

  site_config {
    minimum_tls_version = "1.2"
    http2_enabled       = true
  }

  app_settings = {
    AzureWebJobsStorage__accountName = azurerm_storage_account.this.name
    AzureWebJobsStorage__credential  = "managedidentity"
    AzureWebJobsStorage__clientId    = azurerm_user_assigned_identity.gateway.client_id
    AZURE_CLIENT_ID                  = azurerm_user_assigned_identity.gateway.client_id
    PYTHON_ENABLE_INIT_INDEXING      = "1"
    SKYRELAY_LOG_SINK                = "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.logs.name}/logs"
    SKYRELAY_CONFIG                  = "${azurerm_storage_account.this.primary_blob_endpoint}${azurerm_storage_container.config.name}/skyrelay.yaml"
    SKYRELAY_REDIS_URL               = "rediss://${azurerm_managed_redis.this.hostname}:10000/0"
    SKYRELAY_REDIS_PASSWORD          = azurerm_managed_redis.this.default_database[0].primary_access_key
    SKYRELAY_LOG_SPILL_DIR           = "/tmp/skyrelay-spill"
  }
}
