DROP TABLE IF EXISTS schema_registry_config, schema_registry_versions, schema_registry_schemas;
DROP TABLE IF EXISTS audit_logs, customer_import_logs, program_settings, customers, merchants;
DROP FUNCTION IF EXISTS core_decrypt_email(text), core_sanitize_metadata(), core_encrypt_email(),
    core_touch_updated_at(), core_strip_pii(jsonb), core_pii_keys();
