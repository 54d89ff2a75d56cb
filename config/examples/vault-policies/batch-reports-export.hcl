# reports-export (AppRole batch job)
path "secret/data/analytics/reports/sftp" {
  capabilities = ["read"]
}
path "secret/data/analytics/reports/warehouse-ro" {
  capabilities = ["read"]
}
path "secret/data/shared/smtp/relay" {
  capabilities = ["read"]
}
