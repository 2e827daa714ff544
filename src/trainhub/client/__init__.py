"""trainhub.client."""
