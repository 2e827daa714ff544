"""trainhub.server.services."""
