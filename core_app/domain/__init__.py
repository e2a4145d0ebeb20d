"""Pure domain code: models, validation, PII sanitising, merges. No I/O lives here."""
