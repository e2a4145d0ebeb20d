"""A fake Shopify that speaks the real protocol, for tests and `core dev --fake-shopify`.

One aiohttp server holds any number of shops under `/shops/{shop}/` (the service reaches them through
`SHOPIFY_SHOP_URL=http://host:port/shops/{shop}`): OAuth, Admin REST customers with `Link` cursors and
a leaky bucket, Admin GraphQL with cost throttling and bulk operations writing JSONL, and a webhook
sender that signs, retries and redelivers.
"""

from core_app.devtools.fake_shopify.server import FakeShopify, running_fake_shopify

__all__ = ["FakeShopify", "running_fake_shopify"]
