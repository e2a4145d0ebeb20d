-- Shopify app lifecycle of a merchant (docs/decisions.md D120): installed or uninstalled, when, with
-- which scopes, and its offline Admin API token. The token is envelope-encrypted: sealed (AES-256-GCM)
-- under a per-merchant data key, which is itself wrapped by KEY_ENCRYPTION_KEY; both bound to the
-- merchant id. Uninstalling discards both; shop/redact deletes the merchant's data.
-- depends: 0003_email_s2k

ALTER TABLE merchants
    ADD COLUMN status          TEXT NOT NULL DEFAULT 'installed'
                               CHECK (status IN ('installed', 'uninstalled')),
    ADD COLUMN installed_at    TIMESTAMP(3),
    ADD COLUMN uninstalled_at  TIMESTAMP(3),
    ADD COLUMN scopes          TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN token_key_wrapped BYTEA,
    ADD COLUMN token_sealed    BYTEA,
    ADD COLUMN updated_at      TIMESTAMP(3),
    ADD CONSTRAINT merchants_token_whole CHECK ((token_key_wrapped IS NULL) = (token_sealed IS NULL)),
    ADD CONSTRAINT merchants_uninstalled_has_no_token
        CHECK (status = 'installed' OR token_sealed IS NULL);

UPDATE merchants SET installed_at = created_at WHERE installed_at IS NULL;

-- The `shopify_api` import source: customers pulled from the shop's Admin API (docs/imports.md).
ALTER TABLE customer_import_logs DROP CONSTRAINT customer_import_logs_source_check;
ALTER TABLE customer_import_logs ADD CONSTRAINT customer_import_logs_source_check
    CHECK (source IN ('shopify', 'smile_io', 'loyaltylion', 'custom', 'shopify_api'));
