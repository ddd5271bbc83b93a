"""Sub-commands of ``kefu``, one module per domain; ``kefu/cli.py`` mounts them."""
