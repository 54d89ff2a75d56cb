# people of team search: read and browse the team's secrets
path "secret/data/search/*" {
  capabilities = ["read"]
}
path "secret/metadata/search/*" {
  capabilities = ["read", "list"]
}
