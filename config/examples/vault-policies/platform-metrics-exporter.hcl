# platform/metrics-exporter (Kubernetes service account): its own secrets
path "secret/data/platform/metrics-exporter/*" {
  capabilities = ["read"]
}
path "secret/data/shared/datadog/api-key" {
  capabilities = ["read"]
}
