# people of team payments: read and browse the team's secrets
path "secret/data/payments/*" {
  capabilities = ["read"]
}
path "secret/metadata/payments/*" {
  capabilities = ["read", "list"]
}
