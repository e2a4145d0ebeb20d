"""Development tools the service can run (`core dev --fake-shopify`); never used in production."""
