"""`secretwatch serve`: the long-running service (collectors, reader, detection, delivery, API)."""
