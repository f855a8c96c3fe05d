"""Portkey-compatible routing configuration: targets, plans and (with the routing issue) the config schema."""
