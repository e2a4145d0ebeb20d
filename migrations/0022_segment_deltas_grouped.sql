-- Segment-count deltas grouped per (merchant, rfm_score) before they are scored (docs/decisions.md
-- D254). The triggers of 0018 built one JSON object per row and scored each with core_rfm_segment:
-- 55-140 us a row of an import's batch insert, where every new row has the same empty rfm_score.
-- Grouping first gives core_apply_segment_deltas one delta per distinct score, summed to the same
-- per-segment totals, with the same locks (every merchant in the statement, even at a zero delta).
-- depends: 0018_segment_counts

CREATE OR REPLACE FUNCTION core_segment_counts_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', n))
           FROM (SELECT merchant_id, rfm_score, count(*) AS n FROM new_rows GROUP BY 1, 2) AS g));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION core_segment_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', m, 'r', r, 'd', d))
           FROM (SELECT m, r, sum(d) AS d
                   FROM (SELECT merchant_id AS m, rfm_score AS r, -1 AS d FROM old_rows
                         UNION ALL
                         SELECT merchant_id, rfm_score, 1 FROM new_rows) AS u
                  GROUP BY 1, 2) AS g));
    RETURN NULL;
END
$$;

-- As 0019's: the rows of a merchant being purged (core.purging_merchant) count nowhere; the purge
-- deletes that merchant's counts itself.
CREATE OR REPLACE FUNCTION core_segment_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', -n))
           FROM (SELECT merchant_id, rfm_score, count(*) AS n FROM old_rows
                  WHERE merchant_id IS DISTINCT FROM
                        NULLIF(current_setting('core.purging_merchant', true), '')::uuid
                  GROUP BY 1, 2) AS g));
    RETURN NULL;
END
$$;
