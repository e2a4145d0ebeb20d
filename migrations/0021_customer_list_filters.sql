-- Customer list pages that filter stay index-bound at 1,000,000 customers (issue 18, docs/decisions.md
-- D205-D207). Pages are keyset-ordered by id within one merchant. Before this migration every filter
-- walked the primary key (merchant_id, id) and fetched each row from the heap to test it: random UUIDs
-- put each row on another heap page, so a page of `tag=vip` (10 % match) read ~500 heap pages.
-- depends: 0018_customer_lists 0020_strip_pii_fast

-- RFM ranges (and the ranges a segment is made of): the three values as trailing keys after
-- (merchant_id, id). The scan still walks the merchant in id order, but btree tests the range quals on
-- each index entry and fetches from the heap only the rows that match (D205). The expressions are
-- exactly the ones repository_lists.py writes, so the planner matches them.
CREATE INDEX idx_customers_merchant_id_rfm ON customers (
    merchant_id, id,
    core_rfm_value(rfm_score, 'recency'),
    core_rfm_value(rfm_score, 'frequency'),
    core_rfm_value(rfm_score, 'monetary'));

-- Tags: one row per (merchant, tag, customer), kept by triggers in the customer's own transaction, so
-- a `tag=` page is a range of this primary key in id order plus one heap fetch per customer returned
-- (D206). A tag matches as `metadata @> {"tags": [tag]}` does: a string element of a top-level
-- "tags" array. Tags longer than 200 characters are not kept (a list filter takes at most 100;
-- repository_lists.INDEXED_TAG_LENGTH), so no key can exceed btree's size limit.
CREATE TABLE customer_tags (
    merchant_id UUID NOT NULL,
    tag         TEXT NOT NULL,
    customer_id UUID NOT NULL,
    PRIMARY KEY (merchant_id, tag, customer_id)
);

CREATE FUNCTION core_list_tags(metadata jsonb) RETURNS SETOF text LANGUAGE sql IMMUTABLE AS $$
    SELECT DISTINCT t.value #>> '{}'
      FROM jsonb_array_elements(
               CASE WHEN jsonb_typeof(metadata -> 'tags') = 'array' THEN metadata -> 'tags' END) AS t(value)
     WHERE jsonb_typeof(t.value) = 'string' AND char_length(t.value #>> '{}') <= 200
$$;

-- The tags a change removes are deleted by the full primary key (tag = ANY, customer_id), never by a
-- scan of the merchant's entries.
CREATE FUNCTION core_sync_customer_tags() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone text[];
BEGIN
    IF TG_OP <> 'INSERT' THEN
        gone := ARRAY(SELECT core_list_tags(OLD.metadata)
                      EXCEPT SELECT core_list_tags(CASE WHEN TG_OP = 'UPDATE' THEN NEW.metadata END));
        IF cardinality(gone) > 0 THEN
            DELETE FROM customer_tags
             WHERE merchant_id = OLD.merchant_id AND tag = ANY (gone) AND customer_id = OLD.id;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO customer_tags (merchant_id, tag, customer_id)
        SELECT NEW.merchant_id, t, NEW.id FROM core_list_tags(NEW.metadata) AS t
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

-- Only a change of the tags runs the function: the sink's score updates pass the WHEN test and stop.
CREATE TRIGGER trg_customer_tags_insert AFTER INSERT ON customers FOR EACH ROW
    WHEN (jsonb_typeof(NEW.metadata -> 'tags') = 'array') EXECUTE FUNCTION core_sync_customer_tags();
CREATE TRIGGER trg_customer_tags_update AFTER UPDATE ON customers FOR EACH ROW
    WHEN (OLD.metadata -> 'tags' IS DISTINCT FROM NEW.metadata -> 'tags')
    EXECUTE FUNCTION core_sync_customer_tags();
CREATE TRIGGER trg_customer_tags_delete AFTER DELETE ON customers FOR EACH ROW
    WHEN (jsonb_typeof(OLD.metadata -> 'tags') = 'array') EXECUTE FUNCTION core_sync_customer_tags();

-- The customers already stored. The triggers exist first and the migration's transaction holds their
-- lock on customers until it commits, so no write falls between the two.
INSERT INTO customer_tags (merchant_id, tag, customer_id)
SELECT c.merchant_id, t, c.id FROM customers c, core_list_tags(c.metadata) AS t
 WHERE jsonb_typeof(c.metadata -> 'tags') = 'array';
ANALYZE customer_tags;
