# ci-deploy (GitLab CI JWT): deployment credentials and CI tokens
path "secret/data/ci/*" {
  capabilities = ["read"]
}
