"""Labels for products and queries: one fashion vocabulary, several sources."""
