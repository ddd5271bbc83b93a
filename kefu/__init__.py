"""Kefu (客服): an omnichannel contact center for online shops."""

__version__ = "0.1.0"
