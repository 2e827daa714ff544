"""trainhub.server."""
