"""trainhub.integrations."""
