"""Routing engine (ACD): agents' attributes and presence, tasks, queues, workflows, offers, service levels."""
