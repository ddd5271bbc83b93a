"""Order-aware service: canonical orders, after-sales rules (returns, refunds, price protection, risk) and actions."""
