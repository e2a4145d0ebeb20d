DROP TABLE IF EXISTS customer_data_keys, api_keys;
