DELETE FROM customer_import_logs WHERE source = 'shopify_api';
ALTER TABLE customer_import_logs DROP CONSTRAINT customer_import_logs_source_check;
ALTER TABLE customer_import_logs ADD CONSTRAINT customer_import_logs_source_check
    CHECK (source IN ('shopify', 'smile_io', 'loyaltylion', 'custom'));
ALTER TABLE merchants
    DROP CONSTRAINT IF EXISTS merchants_uninstalled_has_no_token,
    DROP CONSTRAINT IF EXISTS merchants_token_whole,
    DROP COLUMN IF EXISTS updated_at,
    DROP COLUMN IF EXISTS token_sealed,
    DROP COLUMN IF EXISTS token_key_wrapped,
    DROP COLUMN IF EXISTS scopes,
    DROP COLUMN IF EXISTS uninstalled_at,
    DROP COLUMN IF EXISTS installed_at,
    DROP COLUMN IF EXISTS status;
