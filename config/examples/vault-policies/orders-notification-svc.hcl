# orders/notification-svc (Kubernetes service account): its own secrets
path "secret/data/orders/notification-svc/*" {
  capabilities = ["read"]
}
path "secret/data/shared/sentry/dsn" {
  capabilities = ["read"]
}
