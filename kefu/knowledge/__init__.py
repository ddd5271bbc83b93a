"""Knowledge base: articles and FAQs in zh/en, hybrid retrieval, suggestions and gap mining."""
