"""Faust tables (RocksDB, changelog-backed) and their read-through."""
