# nightly-billing (AppRole batch job)
path "secret/data/payments/billing/stripe-export" {
  capabilities = ["read"]
}
path "secret/data/payments/billing/sftp" {
  capabilities = ["read"]
}
path "database/creds/billing" {
  capabilities = ["read"]
}
