-- Events for customers that do not exist yet (docs/decisions.md D103), and replayed dead letters (D104).
-- parked_events: parked here instead of the dead-letter topic, retried with backoff, applied once the
-- customer exists (API, import, webhook), dead-lettered with their reason after PARKED_EVENT_TTL_SECONDS.
-- The raw record is kept as consumed (rfm/points/referral/gdpr events carry no email).
-- depends: 0003_email_s2k
CREATE TABLE parked_events (
    id               BIGSERIAL PRIMARY KEY,
    merchant_id      UUID NOT NULL,
    customer_id      UUID NOT NULL,
    source_topic     TEXT NOT NULL,               -- the original topic: picks the parser
    received_on      TEXT NOT NULL,               -- the topic the record was consumed from
    source_partition INTEGER NOT NULL,
    source_offset    BIGINT NOT NULL,
    record_key       BYTEA,
    record_value     BYTEA,
    headers          JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(headers) = 'array'),
    record_timestamp DOUBLE PRECISION,            -- the record's own timestamp (epoch seconds)
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    parked_at        TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    next_attempt_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at       TIMESTAMP(3) NOT NULL,
    UNIQUE (received_on, source_partition, source_offset)  -- a batch processed again parks once
);
CREATE INDEX parked_events_due ON parked_events (next_attempt_at);
CREATE INDEX parked_events_customer ON parked_events (merchant_id, customer_id);

-- Dead letters already replayed by `core dlq replay` (D104): a second replay skips them.
CREATE TABLE dead_letter_replays (
    dlq_partition INTEGER NOT NULL,
    dlq_offset    BIGINT NOT NULL,
    actor         TEXT NOT NULL,
    replayed_at   TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (dlq_partition, dlq_offset)
);
