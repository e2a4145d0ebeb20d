DROP INDEX IF EXISTS idx_audit_logs_entity;
DELETE FROM api_keys WHERE 'customers:read_pii' = ANY (permissions);
ALTER TABLE api_keys DROP CONSTRAINT api_keys_permissions_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_permissions_check CHECK (
    cardinality(permissions) > 0
    AND permissions <@ ARRAY['admin:full', 'admin:customers:edit', 'admin:customers:view']);
DROP FUNCTION IF EXISTS core_rfm_segment(jsonb, jsonb);
DROP FUNCTION IF EXISTS core_rfm_value(jsonb, text);
DROP INDEX IF EXISTS idx_customers_merchant_redacted;
DROP INDEX IF EXISTS idx_customers_merchant_updated_at;
