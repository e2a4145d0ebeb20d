"""The ports the use cases depend on (`typing.Protocol`); adapters implement them, tests fake them
(tests/unit/fakes.py). The composition root (core_app/bootstrap.py) picks the adapters."""

from __future__ import annotations
