"""Order-system connectors: demo shop, marketplace normalisers, generic REST, webhooks."""
