import pytest

from core_app.domain.errors import ValidationFailed
from core_app.domain.program_settings import (
    RTL_LOCALES,
    SUPPORTED_LOCALES,
    rtl_languages,
    validate_loyalty_config,
    validate_rfm_thresholds,
)

GOOD_THRESHOLDS = {
    "recency": {"min": 7, "max": 90},
    "frequency": {"min": 1, "max": 10},
    "monetary": {"min": 50, "max": 2500},
}


def test_plan_example_thresholds_are_valid() -> None:
    assert validate_rfm_thresholds(GOOD_THRESHOLDS) == GOOD_THRESHOLDS


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recency": {"min": 10, "max": 5}}, "rfm_thresholds.recency.max"),
        ({"frequency": {"min": -1, "max": 5}}, "rfm_thresholds.frequency.min"),
        ({"monetary": {"min": "50", "max": 100}}, "rfm_thresholds.monetary.min"),
        ({"monetary": {"min": 1, "max": True}}, "rfm_thresholds.monetary.max"),
        ({"recency": [7, 90]}, "rfm_thresholds.recency"),
        ({"loyalty": {"min": 1, "max": 2}}, "rfm_thresholds.loyalty"),
    ],
)
def test_bad_thresholds_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_rfm_thresholds(GOOD_THRESHOLDS | change)
    assert caught.value.field == field


def test_missing_dimension_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_rfm_thresholds({k: v for k, v in GOOD_THRESHOLDS.items() if k != "monetary"})
    assert caught.value.field == "rfm_thresholds.monetary"


def test_loyalty_config_keeps_extra_keys_and_marks_rtl() -> None:
    config = validate_loyalty_config(
        {"points_per_dollar": 10, "languages": ["en", "ar", "he"], "theme": "dark"}
    )
    assert config["theme"] == "dark"
    assert rtl_languages(config) == ["ar", "he"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"points_per_dollar": 0, "languages": ["en"]}, "loyalty_config.points_per_dollar"),
        ({"points_per_dollar": -3, "languages": ["en"]}, "loyalty_config.points_per_dollar"),
        ({"languages": ["en"]}, "loyalty_config.points_per_dollar"),
        ({"points_per_dollar": 1, "languages": []}, "loyalty_config.languages"),
        ({"points_per_dollar": 1, "languages": ["en", "xx"]}, "loyalty_config.languages[1]"),
        ({"points_per_dollar": 1, "languages": ["en", "en"]}, "loyalty_config.languages"),
    ],
)
def test_bad_loyalty_config_names_the_field(config: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_loyalty_config(config)
    assert caught.value.field == field


def test_twenty_two_locales_including_the_rtl_ones() -> None:
    assert len(SUPPORTED_LOCALES) == len(set(SUPPORTED_LOCALES)) == 22
    assert {"ar", "he"} <= RTL_LOCALES <= set(SUPPORTED_LOCALES)
