# search/query-api (Kubernetes service account): its own secrets
path "secret/data/search/query-api/*" {
  capabilities = ["read"]
}
path "secret/data/shared/datadog/api-key" {
  capabilities = ["read"]
}
path "secret/data/shared/sentry/dsn" {
  capabilities = ["read"]
}
