-- GDPR requests and data exports (docs/decisions.md D160, D161).
-- gdpr_requests: every compliance request (Shopify's customers/data_request, customers/redact,
-- shop/redact; AdminCore's gdpr_request.created ACCESS and REDACT), its status and its 30-day
-- deadline. No PII: ids, counts and error messages only.
-- gdpr_exports: one data export per access request, sealed under the customer's own data key
-- (shredding the key erases the export too) or, when no customer was found, under a fresh key
-- wrapped by KEY_ENCRYPTION_KEY.
-- A shop purge deletes its merchant's segment counts itself (D127): the delete trigger leaves out
-- the rows of the merchant named by the transaction's `core.purging_merchant` setting, so a purge
-- of 50,000 customers does not score each one only to subtract it.
-- depends: 0017_shopify_merchants 0018_segment_counts
CREATE TABLE gdpr_requests (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('access', 'redact', 'shop_redact')),
    source       TEXT NOT NULL CHECK (source IN ('shopify', 'admincore')),
    merchant_id  UUID REFERENCES merchants (id),
    customer_id  UUID,
    shop_domain  TEXT,
    external_id  TEXT CHECK (length(external_id) <= 200),
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   TEXT,
    result       JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(result) = 'object'),
    received_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    deadline_at  TIMESTAMP(3) NOT NULL,
    completed_at TIMESTAMP(3),
    CHECK ((status = 'done') = (completed_at IS NOT NULL))
);
CREATE INDEX gdpr_requests_not_done ON gdpr_requests (received_at) WHERE status <> 'done';
CREATE INDEX gdpr_requests_merchant ON gdpr_requests (merchant_id, received_at);

CREATE TABLE gdpr_exports (
    id          UUID PRIMARY KEY,
    request_id  UUID NOT NULL UNIQUE REFERENCES gdpr_requests (id) ON DELETE CASCADE,
    merchant_id UUID NOT NULL REFERENCES merchants (id),
    customer_id UUID,
    sealed_with TEXT NOT NULL CHECK (sealed_with IN ('customer_key', 'kek')),
    key_wrapped BYTEA,
    sealed      TEXT NOT NULL,
    created_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CHECK ((sealed_with = 'kek') = (key_wrapped IS NOT NULL))
);
CREATE INDEX gdpr_exports_merchant ON gdpr_exports (merchant_id, customer_id);

CREATE OR REPLACE FUNCTION core_segment_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', -1)) FROM old_rows
          WHERE merchant_id IS DISTINCT FROM
                NULLIF(current_setting('core.purging_merchant', true), '')::uuid));
    RETURN NULL;
END
$$;
