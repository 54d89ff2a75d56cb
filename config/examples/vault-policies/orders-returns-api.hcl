# orders/returns-api (Kubernetes service account): its own secrets, database credentials
path "secret/data/orders/returns-api/*" {
  capabilities = ["read"]
}
path "secret/data/shared/datadog/api-key" {
  capabilities = ["read"]
}
path "secret/data/shared/kafka/ca" {
  capabilities = ["read"]
}
path "secret/data/shared/sentry/dsn" {
  capabilities = ["read"]
}
path "database/creds/returns-api" {
  capabilities = ["read"]
}
