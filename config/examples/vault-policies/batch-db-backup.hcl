# db-backup (AppRole batch job)
path "secret/data/platform/db-backup/*" {
  capabilities = ["read"]
}
path "database/creds/backup-*" {
  capabilities = ["read"]
}
