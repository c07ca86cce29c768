"""HTTP routes, one module per domain; each route only parses, checks permission and calls a service."""
