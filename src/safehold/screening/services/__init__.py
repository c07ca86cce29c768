"""The built-in external classification services: one module per service (its settings, credentials, request
building, answer parsing and label mapping) and one stand-in per service speaking its protocol on loopback."""
