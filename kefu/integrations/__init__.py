"""Providers behind the ports of the domains (order systems, marketplaces, channels)."""
