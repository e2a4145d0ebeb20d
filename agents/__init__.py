"""Kafka entrypoints: one module per consumed topic."""
