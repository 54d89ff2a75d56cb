# payments/ledger-worker (Kubernetes service account): its own secrets, database credentials
path "secret/data/payments/ledger-worker/*" {
  capabilities = ["read"]
}
path "secret/data/shared/kafka/ca" {
  capabilities = ["read"]
}
path "database/creds/ledger-worker" {
  capabilities = ["read"]
}
