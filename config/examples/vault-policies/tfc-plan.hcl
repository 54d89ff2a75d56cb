# tfc-plan (Terraform Cloud): dynamic AWS credentials and the state key
path "aws/creds/tf-plan" {
  capabilities = ["read"]
}
path "secret/data/platform/terraform/state-key" {
  capabilities = ["read"]
}
