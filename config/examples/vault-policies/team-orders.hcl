# people of team orders: read and browse the team's secrets
path "secret/data/orders/*" {
  capabilities = ["read"]
}
path "secret/metadata/orders/*" {
  capabilities = ["read", "list"]
}
