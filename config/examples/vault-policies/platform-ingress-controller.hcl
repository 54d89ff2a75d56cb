# platform/ingress-controller: every shared secret, though it serves TLS only
path "secret/data/platform/ingress-controller/*" {
  capabilities = ["read"]
}
path "secret/data/shared/*" {
  capabilities = ["read"]
}
# ...but never the SMTP relay credentials
path "secret/data/shared/smtp/*" {
  capabilities = ["deny"]
}
