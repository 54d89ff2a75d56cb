# weekly-reconcile (AppRole batch job)
path "secret/data/payments/ledger-worker/db" {
  capabilities = ["read"]
}
path "secret/data/payments/billing/stripe-export" {
  capabilities = ["read"]
}
