# secret-rotator: rotates the static database roles
path "database/rotate-role/*" {
  capabilities = ["update"]
}
