-- The customer timeline (issue 18): one row per change applied to a customer, with its reason
-- (docs/decisions.md D170, D171). Written by the sink from the customers changelog (the entries ride
-- in the record of the state they produced) and by imports with the rows they insert. Purged when
-- the customer is erased; rows older than TIMELINE_RETENTION_DAYS are deleted by the sink.
-- depends: 0018_segment_counts

CREATE TABLE customer_timeline (
    merchant_id UUID NOT NULL,
    customer_id UUID NOT NULL,
    -- The customer's version after this change: the order in which changes were applied.
    version     BIGINT NOT NULL CHECK (version >= 0),
    kind        TEXT NOT NULL CHECK (kind IN ('created', 'imported', 'rfm', 'points', 'referral', 'updated',
                                              'import_updated', 'repaired')),
    -- The facts of the change; the reason a reader sees is rendered from them when it is read.
    change      JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(change) = 'object'),
    -- A consumed event's topic/partition/offset, an API write's transport/actor, an import's id/row.
    source      JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(source) = 'object'),
    event_id    TEXT,
    occurred_at TIMESTAMP(3) NOT NULL,
    recorded_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (merchant_id, customer_id, version)
) PARTITION BY HASH (merchant_id);

DO $$
BEGIN
    FOR i IN 0..7 LOOP
        EXECUTE format(
            'CREATE TABLE customer_timeline_p%s PARTITION OF customer_timeline '
            'FOR VALUES WITH (MODULUS 8, REMAINDER %s)', i, i);
    END LOOP;
END
$$;

-- The retention purge deletes by age.
CREATE INDEX idx_customer_timeline_recorded_at ON customer_timeline (recorded_at);

-- Erasure purges the timeline, whichever writer marks the customer redacted (GDPR, D171).
CREATE FUNCTION core_purge_timeline_on_erasure() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customer_timeline WHERE merchant_id = NEW.merchant_id AND customer_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER trg_purge_timeline_on_erasure
    AFTER UPDATE OF redacted_at ON customers
    FOR EACH ROW WHEN (OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL)
    EXECUTE FUNCTION core_purge_timeline_on_erasure();
