# analytics/feature-store: granted the whole analytics tree where it needs two secrets
path "secret/data/analytics/*" {
  capabilities = ["read"]
}
path "secret/data/shared/kafka/ca" {
  capabilities = ["read"]
}
path "database/creds/feature-store" {
  capabilities = ["read"]
}
