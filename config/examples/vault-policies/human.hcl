# every person: look up their own token's capabilities, read the shared configuration
path "sys/capabilities-self" {
  capabilities = ["update"]
}
path "secret/data/shared/*" {
  capabilities = ["read"]
}
