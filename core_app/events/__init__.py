"""Avro events with Confluent framing, and dead letters."""
