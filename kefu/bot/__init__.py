"""The bot: declarative dialogue flows over commerce services, context carry-over and the human handoff policy."""
