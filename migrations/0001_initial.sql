-- LoyalNest Core: initial schema.
-- Email is AES-256 encrypted by pgcrypto (OpenPGP symmetric, cipher-algo=aes256); the keys come from
-- the connection's `core.email_key` / `core.email_hash_key` settings, never from a table.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE merchants (
    id          UUID PRIMARY KEY,
    shop_domain TEXT NOT NULL UNIQUE CHECK (length(shop_domain) BETWEEN 1 AND 255),
    name        TEXT,
    created_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Hash-partitioned by merchant: the primary key must include the partition key.
CREATE TABLE customers (
    id          UUID NOT NULL,
    merchant_id UUID NOT NULL REFERENCES merchants (id),
    email       TEXT NOT NULL CHECK (email LIKE 'aes256:%' OR email = 'redacted'),
    email_hash  TEXT CHECK (email_hash ~ '^[0-9a-f]{64}$'),
    rfm_score   JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(rfm_score) = 'object'),
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    version     BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0),
    -- Per source ("rfm", "points", ...), the occurred-at (epoch ms) of the newest event applied.
    applied_as_of JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(applied_as_of) = 'object'),
    redacted_at TIMESTAMP(3),
    created_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  TIMESTAMP(3),
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, email_hash)
) PARTITION BY HASH (merchant_id);

CREATE TABLE program_settings (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id    UUID NOT NULL UNIQUE REFERENCES merchants (id),
    rfm_thresholds JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(rfm_thresholds) = 'object'),
    loyalty_config JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(loyalty_config) = 'object'),
    version        BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0),
    created_at     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at     TIMESTAMP(3)
);

CREATE TABLE customer_import_logs (
    import_id      UUID NOT NULL,
    merchant_id    UUID NOT NULL REFERENCES merchants (id),
    source         TEXT NOT NULL CHECK (source IN ('shopify', 'smile_io', 'loyaltylion', 'custom')),
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    file_url       TEXT,
    record_count   INTEGER NOT NULL DEFAULT 0 CHECK (record_count >= 0),
    error_count    INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    error_log      JSONB,
    failure_reason TEXT,
    version        BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0),
    created_at     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at     TIMESTAMP(3),
    PRIMARY KEY (merchant_id, import_id)
) PARTITION BY HASH (merchant_id);

CREATE TABLE audit_logs (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id UUID REFERENCES merchants (id),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT,
    details     JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);

DO $$
BEGIN
    FOR i IN 0..7 LOOP
        EXECUTE format(
            'CREATE TABLE customers_p%s PARTITION OF customers FOR VALUES WITH (MODULUS 8, REMAINDER %s)',
            i, i);
        EXECUTE format(
            'CREATE TABLE customer_import_logs_p%s PARTITION OF customer_import_logs '
            'FOR VALUES WITH (MODULUS 8, REMAINDER %s)', i, i);
    END LOOP;
END
$$;

-- The plan's five indexes, under their exact names.
CREATE INDEX idx_customers_merchant_id ON customers USING btree (merchant_id);
CREATE INDEX idx_customers_rfm_score ON customers USING gin (rfm_score);
CREATE INDEX idx_customers_metadata ON customers USING gin (metadata);
CREATE INDEX idx_program_settings_merchant_id ON program_settings USING btree (merchant_id);
CREATE INDEX idx_customer_import_logs_merchant_id_status
    ON customer_import_logs USING btree (merchant_id, status);
CREATE INDEX idx_audit_logs_merchant_id_created_at ON audit_logs (merchant_id, created_at);

-- Mirrors core_app.domain.pii.PII_KEYS (kept equal by a test).
CREATE FUNCTION core_pii_keys() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['first_name', 'last_name', 'middle_name', 'full_name', 'phone', 'phone_number',
                 'mobile', 'email', 'email_address', 'address', 'address1', 'address2', 'street',
                 'street_address', 'postal_code', 'zip', 'date_of_birth', 'dob', 'ip_address']
$$;

CREATE FUNCTION core_strip_pii(doc jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
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

CREATE FUNCTION core_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE FUNCTION core_encrypt_email() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    enc_key  text := current_setting('core.email_key', true);
    hash_key text := current_setting('core.email_hash_key', true);
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.email IS NOT DISTINCT FROM OLD.email THEN
        RETURN NEW;
    END IF;
    -- Ciphertext is base64 and never holds '@'; every address does.
    IF position('@' IN NEW.email) > 0 THEN
        IF coalesce(enc_key, '') = '' OR coalesce(hash_key, '') = '' THEN
            RAISE EXCEPTION 'core.email_key and core.email_hash_key must be set on this connection'
                USING ERRCODE = '28000';
        END IF;
        NEW.email_hash := encode(hmac(lower(btrim(NEW.email)), hash_key, 'sha256'), 'hex');
        NEW.email := 'aes256:' || translate(
            encode(pgp_sym_encrypt(lower(btrim(NEW.email)), enc_key, 'cipher-algo=aes256'), 'base64'),
            E'\n', '');
    ELSIF NEW.email <> 'redacted' AND NEW.email !~ '^aes256:[A-Za-z0-9+/=]+$' THEN
        RAISE EXCEPTION 'customers.email must be an email address or aes256 ciphertext'
            USING ERRCODE = '22023';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION core_sanitize_metadata() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.metadata := core_strip_pii(COALESCE(NEW.metadata, '{}'::jsonb));
    RETURN NEW;
END
$$;

CREATE TRIGGER trg_customers_updated_at
    BEFORE INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION core_touch_updated_at();
CREATE TRIGGER trg_encrypt_email
    BEFORE INSERT OR UPDATE OF email ON customers
    FOR EACH ROW EXECUTE FUNCTION core_encrypt_email();
CREATE TRIGGER trg_sanitize_metadata
    BEFORE INSERT OR UPDATE OF metadata ON customers
    FOR EACH ROW EXECUTE FUNCTION core_sanitize_metadata();

CREATE FUNCTION core_decrypt_email(ciphertext text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF ciphertext IS NULL OR ciphertext = 'redacted' THEN
        RETURN NULL;
    END IF;
    RETURN pgp_sym_decrypt(decode(substr(ciphertext, 8), 'base64'),
                           current_setting('core.email_key'));
END
$$;

-- Development Schema Registry (core_app.schema_registry); production uses a real registry.
CREATE TABLE schema_registry_schemas (
    id          SERIAL PRIMARY KEY,
    schema_type TEXT NOT NULL DEFAULT 'AVRO',
    schema      TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE schema_registry_versions (
    subject    TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    schema_id  INTEGER NOT NULL REFERENCES schema_registry_schemas (id),
    deleted    BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (subject, version)
);

CREATE TABLE schema_registry_config (
    subject       TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL CHECK (compatibility IN
        ('NONE', 'BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD', 'FORWARD_TRANSITIVE',
         'FULL', 'FULL_TRANSITIVE'))
);
