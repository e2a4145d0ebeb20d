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
