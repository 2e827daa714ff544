"""trainhub.server.routes."""
