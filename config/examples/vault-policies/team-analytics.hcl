# people of team analytics: read and browse the team's secrets
path "secret/data/analytics/*" {
  capabilities = ["read"]
}
path "secret/metadata/analytics/*" {
  capabilities = ["read", "list"]
}
