"""Where runs execute: the local process runner's stand-ins for other places (a Ray cluster)."""
