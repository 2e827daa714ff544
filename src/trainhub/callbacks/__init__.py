"""trainhub.callbacks."""
