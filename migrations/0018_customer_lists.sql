-- Customer lists and search (issue 18): indexes for keyset pages and filters, the RFM segment rule,
-- the PII read scope for API keys, and the PII read audit's index.
-- depends: 0003_email_s2k

-- Pages are keyset-ordered by id within one merchant: the primary key (merchant_id, id) serves the
-- plain list. Incremental sync (updated_since) and erased customers get their own indexes; email
-- search uses the (merchant_id, email_hash) unique index, tags the GIN index on metadata.
CREATE INDEX idx_customers_merchant_updated_at ON customers (merchant_id, updated_at, id);
CREATE INDEX idx_customers_merchant_redacted ON customers (merchant_id, id) WHERE redacted_at IS NOT NULL;

-- A number from rfm_score, or NULL when the dimension is missing or not a number.
CREATE FUNCTION core_rfm_value(rfm jsonb, dimension text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(rfm -> dimension) = 'number' THEN (rfm ->> dimension)::numeric END
$$;

-- Mirrors core_app.domain.segments.segment_of (kept equal by a property test). Levels 1-3 per
-- dimension from the merchant's rfm_thresholds: recency (days) at most min is 3, at most max 2, else
-- 1; frequency and monetary at least max is 3, at least min 2, else 1.
CREATE FUNCTION core_rfm_segment(rfm jsonb, thresholds jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN r IS NULL OR f IS NULL OR m IS NULL OR thresholds IS NULL
             OR core_rfm_value(thresholds -> 'recency', 'min') IS NULL THEN 'unscored'
        WHEN rl = 3 AND fl = 3 AND ml >= 2 THEN 'champions'
        WHEN rl = 3 AND fl = 1 THEN 'new'
        WHEN rl >= 2 AND fl >= 2 THEN 'loyal'
        WHEN rl = 1 AND fl >= 2 THEN 'at_risk'
        WHEN rl = 1 THEN 'hibernating'
        ELSE 'needs_attention'
    END
    FROM (SELECT r, f, m,
                 CASE WHEN r <= core_rfm_value(thresholds -> 'recency', 'min') THEN 3
                      WHEN r <= core_rfm_value(thresholds -> 'recency', 'max') THEN 2 ELSE 1 END AS rl,
                 CASE WHEN f >= core_rfm_value(thresholds -> 'frequency', 'max') THEN 3
                      WHEN f >= core_rfm_value(thresholds -> 'frequency', 'min') THEN 2 ELSE 1 END AS fl,
                 CASE WHEN m >= core_rfm_value(thresholds -> 'monetary', 'max') THEN 3
                      WHEN m >= core_rfm_value(thresholds -> 'monetary', 'min') THEN 2 ELSE 1 END AS ml
            FROM (SELECT core_rfm_value(rfm, 'recency') AS r, core_rfm_value(rfm, 'frequency') AS f,
                         core_rfm_value(rfm, 'monetary') AS m) AS v) AS levels
$$;

-- API keys may carry the PII read scope (docs/decisions.md D132).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_permissions_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_permissions_check CHECK (
    cardinality(permissions) > 0
    AND permissions <@ ARRAY['admin:full', 'admin:customers:edit', 'admin:customers:view',
                             'customers:read_pii']);

-- PII reads are audited per customer; this finds a customer's reads.
CREATE INDEX idx_audit_logs_entity ON audit_logs (entity_type, entity_id, created_at);
