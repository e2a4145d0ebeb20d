DROP TRIGGER IF EXISTS trg_purge_timeline_on_erasure ON customers;
DROP FUNCTION IF EXISTS core_purge_timeline_on_erasure();
DROP TABLE IF EXISTS customer_timeline;
