-- Back to one delta per row (0018_segment_counts; the delete trigger as 0019 left it).
CREATE OR REPLACE FUNCTION core_segment_counts_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', 1)) FROM new_rows));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION core_segment_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(x) FROM (
            SELECT jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', -1) AS x FROM old_rows
            UNION ALL
            SELECT jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', 1) FROM new_rows) AS u));
    RETURN NULL;
END
$$;

-- The delete trigger as 0019_gdpr_requests left it (the purging merchant's rows skipped).
CREATE OR REPLACE FUNCTION core_segment_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', -1)) FROM old_rows
          WHERE merchant_id IS DISTINCT FROM
                NULLIF(current_setting('core.purging_merchant', true), '')::uuid));
    RETURN NULL;
END
$$;
