"""Who may do what: roles, permissions and API keys."""
