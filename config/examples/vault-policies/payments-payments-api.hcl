# payments/payments-api (Kubernetes service account): its own secrets, database credentials
path "secret/data/payments/payments-api/*" {
  capabilities = ["read"]
}
path "secret/data/shared/datadog/api-key" {
  capabilities = ["read"]
}
path "secret/data/shared/kafka/ca" {
  capabilities = ["read"]
}
path "database/creds/payments-api" {
  capabilities = ["read"]
}
