"""RBAC hierarchy and the one authorization check."""

import uuid

import pytest

from core_app.security.errors import Forbidden, Unauthenticated
from core_app.security.principal import (
    EDIT,
    FULL,
    VIEW,
    Principal,
    authorize,
    current_principal,
    grants,
    normalise_permissions,
    system_principal,
    use_principal,
)

M1, M2 = str(uuid.uuid4()), str(uuid.uuid4())


def caller(*permissions: str, merchant: str | None = M1, cross: bool = False) -> Principal:
    return Principal("u", merchant, frozenset(permissions), "jwt", cross_merchant=cross)


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        ({FULL}, FULL, True),
        ({FULL}, EDIT, True),
        ({FULL}, VIEW, True),
        ({EDIT}, FULL, False),
        ({EDIT}, EDIT, True),
        ({EDIT}, VIEW, True),
        ({VIEW}, EDIT, False),
        ({VIEW}, VIEW, True),
        (set(), VIEW, False),
        ({"admin:everything", "root"}, VIEW, False),
    ],
)
def test_full_implies_edit_implies_view(held: set[str], needed: str, allowed: bool) -> None:
    assert grants(held, needed) is allowed


def test_unknown_permissions_are_dropped() -> None:
    assert normalise_permissions(["admin:full", "admin:*", ""]) == {FULL}


def test_authorize_allows_own_merchant_with_enough_permission() -> None:
    authorize(caller(VIEW), M1, VIEW)
    authorize(caller(FULL), M1.upper(), EDIT)  # UUID case does not matter


def test_no_principal_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        authorize(None, M1, VIEW)


def test_other_merchant_is_forbidden_even_for_admin_full() -> None:
    with pytest.raises(Forbidden) as refused:
        authorize(caller(FULL), M2, VIEW)
    assert refused.value.details["reason"] == "merchant"
    assert refused.value.http_status == 403 and refused.value.grpc_status.name == "PERMISSION_DENIED"


def test_malformed_target_merchant_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        authorize(caller(FULL), "'; DROP TABLE customers; --", VIEW)


def test_too_few_permissions_is_forbidden_naming_the_permission() -> None:
    with pytest.raises(Forbidden) as refused:
        authorize(caller(EDIT), M1, FULL)
    assert refused.value.extensions == {"code": "FORBIDDEN", "reason": "permission", "permission": FULL}


def test_cross_merchant_only_with_the_explicit_claim() -> None:
    authorize(caller(VIEW, cross=True), M2, VIEW)
    authorize(caller(VIEW, merchant=None, cross=True), M2, VIEW)
    with pytest.raises(Forbidden):
        authorize(caller(VIEW, cross=True), M2, EDIT)  # the claim does not add permissions


def test_use_principal_sets_and_restores_the_context() -> None:
    assert current_principal.get() is None
    with use_principal(system_principal("import")):
        assert current_principal.get().auth_method == "system"
    assert current_principal.get() is None


def test_an_api_keys_principal_per_address_is_shared_and_bounded() -> None:
    from core_app.security import api_keys

    key = api_keys.ApiKey("lnk_" + "a" * 24, str(uuid.uuid4()), frozenset({VIEW}), "lns_x", None)
    here = key.principal_at("203.0.113.5")
    assert here is key.principal_at("203.0.113.5")
    assert (here.client_ip, key.principal_at(None).client_ip) == ("203.0.113.5", None)
    assert here.subject == key.principal.subject and here.permissions == key.principal.permissions
    for n in range(api_keys.PRINCIPALS_PER_KEY + 5):
        assert key.principal_at(f"198.51.100.{n % 250}").client_ip == f"198.51.100.{n % 250}"
    assert len(key._principals_by_ip) <= api_keys.PRINCIPALS_PER_KEY
