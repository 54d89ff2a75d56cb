# secret-rotator: writes a new version of every service secret (and reads it back)
path "secret/data/+/+/*" {
  capabilities = ["create", "update", "read"]
}
path "secret/metadata/+/+/*" {
  capabilities = ["read", "list"]
}
