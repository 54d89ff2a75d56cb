# legacy-cron (AppRole batch job)
path "secret/data/platform/legacy/*" {
  capabilities = ["read"]
}
