DROP TABLE IF EXISTS gdpr_exports;
DROP TABLE IF EXISTS gdpr_requests;
CREATE OR REPLACE FUNCTION core_segment_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM core_apply_segment_deltas(
        (SELECT jsonb_agg(jsonb_build_object('m', merchant_id, 'r', rfm_score, 'd', -1)) FROM old_rows));
    RETURN NULL;
END
$$;
