-- Security layer: API keys for signed REST requests, and per-customer data keys (crypto-shredding).
-- depends: 0001_initial

-- A key id (public, sent as X-Api-Key) and its signing secret (never sent). The secret is stored
-- AES-256-GCM wrapped by KEY_ENCRYPTION_KEY (bound to the key id), so a dump of this table alone
-- signs nothing. Permissions are the RBAC permissions the key grants on its one merchant.
CREATE TABLE api_keys (
    key_id         TEXT PRIMARY KEY CHECK (key_id ~ '^lnk_[0-9a-f]{24}$'),
    merchant_id    UUID NOT NULL REFERENCES merchants (id),
    permissions    TEXT[] NOT NULL CHECK (
        cardinality(permissions) > 0
        AND permissions <@ ARRAY['admin:full', 'admin:customers:edit', 'admin:customers:view']),
    secret_wrapped BYTEA NOT NULL,
    description    TEXT,
    created_at     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at     TIMESTAMP(3),
    revoked_at     TIMESTAMP(3)
);
CREATE INDEX idx_api_keys_merchant_id ON api_keys (merchant_id);

-- One AES-256 data key per customer, wrapped by KEY_ENCRYPTION_KEY (bound to merchant and customer).
-- Shredding sets wrapped_key to NULL and keeps the row as a tombstone, so no new key is ever made
-- for an erased customer: every ciphertext made under the old key is unreadable for good.
CREATE TABLE customer_data_keys (
    merchant_id UUID NOT NULL,
    customer_id UUID NOT NULL,
    wrapped_key BYTEA,
    created_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    shredded_at TIMESTAMP(3),
    PRIMARY KEY (merchant_id, customer_id),
    CHECK ((wrapped_key IS NULL) = (shredded_at IS NOT NULL))
);
