# identity/auth-gateway (Kubernetes service account): its own secrets, database credentials
path "secret/data/identity/auth-gateway/*" {
  capabilities = ["read"]
}
path "secret/data/shared/tls/wildcard" {
  capabilities = ["read"]
}
path "secret/data/shared/datadog/api-key" {
  capabilities = ["read"]
}
path "database/creds/auth-gateway" {
  capabilities = ["read"]
}
