"""trainhub.server.objects."""
