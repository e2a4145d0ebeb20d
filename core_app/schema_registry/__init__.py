"""A development stand-in for the Confluent Schema Registry, persisted in PostgreSQL.

It serves the subset of the REST API that python-schema-registry-client uses. Production points
SCHEMA_REGISTRY_URL at Confluent, Karapace, Redpanda or Apicurio instead.
"""
