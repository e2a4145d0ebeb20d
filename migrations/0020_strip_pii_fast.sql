-- A fast path for the PII sanitiser (docs/decisions.md D240): the recursive walk costs one plpgsql
-- call and one subquery per nested value (~100 us for an imported customer's metadata), and almost
-- no document carries a PII key. jsonb's text form writes every key as "key": , so a document whose
-- lower-cased text never shows a PII key followed by ": " has none at any depth and is returned as
-- is (the walk would rebuild the same value). Anything that may hold one still takes the walk.
-- depends: 0001_initial

CREATE OR REPLACE FUNCTION core_strip_pii(doc jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(doc) IN ('object', 'array')
       AND lower(doc::text) !~ ('"(' || array_to_string(core_pii_keys(), '|') || ')": ') THEN
        RETURN doc;
    END IF;
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
