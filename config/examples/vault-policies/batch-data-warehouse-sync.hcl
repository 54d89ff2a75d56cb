# data-warehouse-sync (AppRole batch job)
path "secret/data/analytics/warehouse/*" {
  capabilities = ["read"]
}
