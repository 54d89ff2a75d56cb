# people of team platform: everything in KV (over-broad, kept for break-glass), except CI
path "secret/data/*" {
  capabilities = ["read"]
}
path "secret/metadata/*" {
  capabilities = ["read", "list"]
}
path "secret/data/ci/*" {
  capabilities = ["deny"]
}
