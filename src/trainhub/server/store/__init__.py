"""trainhub.server.store."""
