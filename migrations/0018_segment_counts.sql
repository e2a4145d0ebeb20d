-- RFM segment counts per merchant, kept exact by statement-level triggers (docs/decisions.md D134).
-- depends: 0018_customer_lists

CREATE TABLE customer_segment_counts (
    merchant_id UUID NOT NULL,
    segment     TEXT NOT NULL,
    customers   BIGINT NOT NULL,  -- no CHECK >= 0: a negative delta is an INSERT row before ON CONFLICT
    PRIMARY KEY (merchant_id, segment)
);

-- Serialises a merchant's recount (exclusive) against the deltas of customer writes (shared).
CREATE FUNCTION core_segment_lock_key(merchant uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('core_segment_counts:' || merchant::text, 0)
$$;

-- Adds the deltas (merchant_id, rfm_score, +1/-1) of one statement, scored under each merchant's
-- current thresholds, in (merchant, segment) order so concurrent writers lock rows in one order.
CREATE FUNCTION core_apply_segment_deltas(changes jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(core_segment_lock_key(m))
       FROM (SELECT DISTINCT (c ->> 'm')::uuid AS m FROM jsonb_array_elements(changes) AS c ORDER BY 1) AS x;
    INSERT INTO customer_segment_counts AS t (merchant_id, segment, customers)
    SELECT d.merchant_id, d.segment, d.delta
      FROM (SELECT (c ->> 'm')::uuid AS merchant_id,
                   core_rfm_segment(c -> 'r', s.rfm_thresholds) AS segment,
                   sum((c ->> 'd')::int) AS delta
              FROM jsonb_array_elements(changes) AS c
              LEFT JOIN program_settings s ON s.merchant_id = (c ->> 'm')::uuid
             GROUP BY 1, 2) AS d
     WHERE d.delta <> 0
     ORDER BY d.merchant_id, d.segment
    ON CONFLICT (merchant_id, segment) DO UPDATE SET customers = t.customers + EXCLUDED.customers;
END
$$;

CREATE FUNCTION core_segment_counts_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', 1)) FROM new_rows));
    RETURN NULL;
END
$$;

CREATE FUNCTION core_segment_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(x) FROM (
            SELECT jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', -1) AS x FROM old_rows
            UNION ALL
            SELECT jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', 1) FROM new_rows) AS u));
    RETURN NULL;
END
$$;

CREATE FUNCTION core_segment_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', -1)) FROM old_rows));
    RETURN NULL;
END
$$;

CREATE TRIGGER trg_segment_counts_insert AFTER INSERT ON customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core_segment_counts_on_insert();
CREATE TRIGGER trg_segment_counts_update AFTER UPDATE ON customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION core_segment_counts_on_update();
CREATE TRIGGER trg_segment_counts_delete AFTER DELETE ON customers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION core_segment_counts_on_delete();

-- New thresholds re-score every customer of the merchant: one recount, under the exclusive lock.
CREATE FUNCTION core_segment_recount(merchant uuid, thresholds jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(core_segment_lock_key(merchant));
    DELETE FROM customer_segment_counts WHERE merchant_id = merchant;
    INSERT INTO customer_segment_counts (merchant_id, segment, customers)
    SELECT merchant, core_rfm_segment(rfm_score, thresholds), count(*)
      FROM customers WHERE merchant_id = merchant GROUP BY 2;
END
$$;

CREATE FUNCTION core_segment_counts_on_thresholds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.rfm_thresholds IS DISTINCT FROM OLD.rfm_thresholds THEN
        PERFORM core_segment_recount(NEW.merchant_id, NEW.rfm_thresholds);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER trg_segment_counts_thresholds AFTER INSERT OR UPDATE ON program_settings
    FOR EACH ROW EXECUTE FUNCTION core_segment_counts_on_thresholds();

INSERT INTO customer_segment_counts (merchant_id, segment, customers)
SELECT c.merchant_id, core_rfm_segment(c.rfm_score, s.rfm_thresholds), count(*)
  FROM customers c LEFT JOIN program_settings s USING (merchant_id)
 GROUP BY 1, 2;
