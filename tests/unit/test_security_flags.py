"""LaunchDarkly source, evaluated in memory from the SDK's test data source (no network)."""

import pytest
from ldclient.config import Config
from ldclient.integrations.test_data import TestData

from core_app.security.flags import CUSTOMER_IMPORT, RFM_SCORE, LaunchDarklyFlags, check_flag_name


async def test_launchdarkly_evaluates_per_merchant_context() -> None:
    data = TestData.data_source()
    data.update(
        data.flag(RFM_SCORE)
        .boolean_flag()
        .variation_for_all(True)
        .variation_for_key("merchant", "m-off", False)
    )
    flags = LaunchDarklyFlags("sdk-test", Config("sdk-test", update_processor_class=data, send_events=False))
    try:
        assert await flags.enabled("m-on", RFM_SCORE) is True
        assert await flags.enabled("m-off", RFM_SCORE) is False
        assert await flags.enabled("m-off", CUSTOMER_IMPORT) is True  # unknown to LD: the default
        data.update(data.flag(RFM_SCORE).boolean_flag().variation_for_all(False))
        assert await flags.enabled("m-on", RFM_SCORE) is False  # changes apply without a restart
    finally:
        flags.close()


def test_unknown_flags_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown flag"):
        check_flag_name("everything_enabled")
