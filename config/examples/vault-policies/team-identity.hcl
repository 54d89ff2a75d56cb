# people of team identity: read and browse the team's secrets
path "secret/data/identity/*" {
  capabilities = ["read"]
}
path "secret/metadata/identity/*" {
  capabilities = ["read", "list"]
}
