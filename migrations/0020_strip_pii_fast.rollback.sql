-- Back to the walk of 0001_initial, without the fast path.
CREATE OR REPLACE FUNCTION core_strip_pii(doc jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    CASE jsonb_typeof(doc)
        WHEN 'object' THEN
            RETURN COALESCE(
                (SELECT jsonb_object_agg(e.key, core_strip_pii(e.value))
                   FROM jsonb_each(doc) AS e
                  WHERE lower(e.key) <> ALL (core_pii_keys())),
                '{}'::jsonb);
        WHEN 'array' THEN
            RETURN COALESCE(
                (SELECT jsonb_agg(core_strip_pii(a.value) ORDER BY a.ord)
                   FROM jsonb_array_elements(doc) WITH ORDINALITY AS a(value, ord)),
                '[]'::jsonb);
        ELSE
            RETURN doc;
    END CASE;
END
$$;
