# search/search-indexer (Kubernetes service account): its own secrets
path "secret/data/search/search-indexer/*" {
  capabilities = ["read"]
}
path "secret/data/shared/kafka/ca" {
  capabilities = ["read"]
}
