"""Security refusals, each with its HTTP status, gRPC status and GraphQL code.

Transports map them in one place each (the HTTP pipeline, the grpclib listener, GraphQL's
`extensions`), so a service function can raise them without knowing who called it.
"""

from __future__ import annotations

from grpclib.const import Status


class SecurityError(Exception):
    http_status = 403
    grpc_status = Status.PERMISSION_DENIED
    code = "FORBIDDEN"

    def __init__(self, message: str, **details: str) -> None:
        super().__init__(message)
        self.reason = message
        self.details = details

    @property
    def extensions(self) -> dict[str, str]:
        """Read by graphql-core when a resolver raises this: the GraphQL error carries the code."""
        return {"code": self.code, **self.details}

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.reason, "code": self.code, **self.details}}


class Unauthenticated(SecurityError):
    """No credentials, or credentials that do not prove who the caller is (401)."""

    http_status = 401
    grpc_status = Status.UNAUTHENTICATED
    code = "UNAUTHENTICATED"


class Forbidden(SecurityError):
    """Authenticated, but not allowed: wrong merchant, too few permissions, IP not allowed (403)."""


class FeatureDisabled(Forbidden):
    """A feature flag is off for the merchant (403 naming the flag)."""

    code = "FEATURE_DISABLED"

    def __init__(self, flag: str) -> None:
        super().__init__(f"feature {flag} is disabled for this merchant", flag=flag)
        self.flag = flag


class RateLimited(SecurityError):
    """Over the per-merchant, per-endpoint limit (429 with Retry-After)."""

    http_status = 429
    grpc_status = Status.RESOURCE_EXHAUSTED
    code = "RATE_LIMITED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after} s")
        self.retry_after = retry_after


class SecurityUnavailable(SecurityError):
    """A check could not run (Redis, Auth or Roles unreachable) and fails closed (503)."""

    http_status = 503
    grpc_status = Status.UNAVAILABLE
    code = "UNAVAILABLE"
