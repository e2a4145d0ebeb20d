-- Back to the iterated S2K of 0001_initial.
CREATE OR REPLACE FUNCTION core_encrypt_email() RETURNS trigger LANGUAGE plpgsql AS $$
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
