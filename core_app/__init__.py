"""LoyalNest Core: the customer-data hub."""
