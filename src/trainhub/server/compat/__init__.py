"""trainhub.server.compat."""
