DROP TRIGGER IF EXISTS trg_customer_tags_delete ON customers;
DROP TRIGGER IF EXISTS trg_customer_tags_update ON customers;
DROP TRIGGER IF EXISTS trg_customer_tags_insert ON customers;
DROP FUNCTION IF EXISTS core_sync_customer_tags();
DROP FUNCTION IF EXISTS core_list_tags(jsonb);
DROP TABLE IF EXISTS customer_tags;
DROP INDEX IF EXISTS idx_customers_merchant_id_rfm;
