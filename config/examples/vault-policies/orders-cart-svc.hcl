# orders/cart-svc: its own secrets, and (too broadly) every orders service's config
path "secret/data/orders/cart-svc/*" {
  capabilities = ["read"]
}
path "secret/data/orders/+/config" {
  capabilities = ["read"]
}
path "secret/data/shared/datadog/api-key" {
  capabilities = ["read"]
}
