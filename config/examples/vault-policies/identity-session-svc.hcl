# identity/session-svc (Kubernetes service account): its own secrets
path "secret/data/identity/session-svc/*" {
  capabilities = ["read"]
}
path "secret/data/shared/datadog/api-key" {
  capabilities = ["read"]
}
