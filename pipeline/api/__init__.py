"""The service's HTTP API: queries and triage over the store while a service holds it."""
