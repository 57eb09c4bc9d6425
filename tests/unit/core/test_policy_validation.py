"""Policy validation: each bad file gives its named error (file, key path, expectation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocs.policy.loader import PolicyError, load_policies, load_policy_files
from ocs.policy.quantities import format_money, parse_money, parse_octets, parse_seconds

GOOD = """
services:
  data: {rating_group: 10, unit: total_octets}
defaults: {service: data}
tariffs:
  t: {prices: {data: {per: {units: 1MB, price: "0.01"}}}}
quotas:
  data: {default_grant: 10MB}
plans:
  p: {currency: EUR, tariff: t}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_policies_load() -> None:
    """The commented examples shipped in policies/ are a valid set."""
    policies = load_policies(Path(__file__).parents[3] / "policies")
    assert "internet" in policies.services and policies.version


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            GOOD.replace('price: "0.01"', "price: 0.01"),
            "tariffs.t.prices.data.per.price: expected a decimal string like '0.01'",
        ),
        (
            GOOD.replace("default_grant: 10MB", "default_grant: 10MB, validity_tme: 5"),
            "quotas.data.validity_tme: unknown key",
        ),
        (
            GOOD.replace("unit: total_octets", "unit: furlongs"),
            "services.data.unit: Input should be",
        ),
        (GOOD.replace("tariff: t}", "tariff: nope}"), "plans.p.tariff: unknown tariff 'nope'"),
        (
            GOOD.replace("{prices: {data:", "{prices: {ghost:"),
            "tariffs.t.prices.ghost: unknown service",
        ),
        (
            GOOD.replace("quotas:\n  data: {default_grant: 10MB}", "quotas: {}"),
            "services.data: no quota for this service",
        ),
        (
            GOOD.replace("currency: EUR", "currency: euro"),
            "plans.p.currency: String should match pattern",
        ),
        (GOOD.replace('price: "0.01"', 'price: "0.0000001"'), "finer than one micro-unit"),
        (
            GOOD.replace("default_grant: 10MB", "default_grant: 10 parsecs"),
            "quotas.data.default_grant: expected a whole number, octets like '10MB'",
        ),
        (
            GOOD.replace('{per: {units: 1MB, price: "0.01"}}', "{rounding: up}"),
            "tariffs.t.prices.data: per: required unless free is true",
        ),
        (
            GOOD.replace("defaults: {service: data}", "defaults: {service: other}"),
            "defaults.service: unknown service 'other'",
        ),
        (
            GOOD.replace("{rating_group: 10, unit: total_octets}", "{unit: total_octets}"),
            "services.data: expected rating_group and/or service_id",
        ),
        (GOOD + "\ntimezone: Mars/Olympus\n", "timezone: unknown time zone 'Mars/Olympus'"),
        ("services: [1, 2]\n", "services: Input should be a valid dictionary"),
        ("services: {data: {rating_group: 10}\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping of sections"),
    ],
)
def test_bad_policy_is_named(tmp_path: Path, bad: str, expected: str) -> None:
    """The error message names the file, the key path and what was expected."""
    path = write(tmp_path, bad)
    with pytest.raises(PolicyError) as info:
        load_policy_files([path])
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_name_defined_in_two_files(tmp_path: Path) -> None:
    """A service defined twice names both files."""
    a = write(tmp_path, GOOD, "a.yaml")
    b = write(tmp_path, "services:\n  data: {rating_group: 11}\n", "b.yaml")
    with pytest.raises(PolicyError, match=r"b\.yaml: services\.data: already defined in .*a\.yaml"):
        load_policy_files([a, b])


def test_version_changes_with_content(tmp_path: Path) -> None:
    """The policy version is a digest of the files: any edit changes it."""
    path = write(tmp_path, GOOD)
    v1 = load_policy_files([path]).version
    path.write_text(GOOD.replace('"0.01"', '"0.02"'))
    assert load_policy_files([path]).version != v1


def test_quantities() -> None:
    """Money is exact decimal text; sizes and durations accept unit suffixes."""
    assert parse_money("1.25") == 1_250_000
    assert parse_money(7) == 7
    assert parse_octets("1MiB") == 1_048_576 and parse_octets("1MB") == 1_000_000
    assert parse_seconds("15m") == 900 and parse_seconds(30) == 30
    assert format_money(-1_500_000, "EUR") == "-1.500000 EUR"
    with pytest.raises(ValueError, match="non-negative"):
        parse_money("-1")
    for text in ("1e3", "NaN", "Infinity", "1_000", ".5", "\u0661"):  # issue 13 item 15
        with pytest.raises(ValueError, match="expected a decimal string"):
            parse_money(text)
    with pytest.raises(ValueError, match="expected seconds"):
        parse_seconds("\u0661\u0662s")  # digits of another script


@pytest.mark.parametrize("example", ["mobile", "wifi"])
def test_commented_examples_load(example: str) -> None:
    """The mobile-operator and Wi-Fi ISP examples are valid, complete sets."""
    policies = load_policies(Path(__file__).parents[3] / "policies" / "examples" / example)
    assert policies.defaults is not None and policies.plans


def test_band_naming_unknown_service(tmp_path: Path) -> None:
    """A band pricing an unknown service names the band's key path."""
    bad = (
        GOOD.replace("plans:", "bands_placeholder:")
        .replace(
            '  t: {prices: {data: {per: {units: 1MB, price: "0.01"}}}}',
            '  t:\n    prices: {data: {per: {units: 1MB, price: "0.01"}}}\n'
            "    bands: [{start: '20:00', end: '08:00', prices: {ghost: {free: true}}}]",
        )
        .replace("bands_placeholder:", "plans:")
    )
    with pytest.raises(PolicyError, match=r"tariffs\.t\.bands\.0\.prices\.ghost: unknown service"):
        load_policy_files([write(tmp_path, bad)])


def test_bad_band_hour_is_named(tmp_path: Path) -> None:
    """A band hour that is not HH:MM is refused with its key path."""
    bad = GOOD.replace(
        '  t: {prices: {data: {per: {units: 1MB, price: "0.01"}}}}',
        '  t:\n    prices: {data: {per: {units: 1MB, price: "0.01"}}}\n'
        "    bands: [{start: '25:00', prices: {data: {free: true}}}]",
    )
    with pytest.raises(
        PolicyError, match=r"tariffs\.t\.bands\.0\.start: String should match pattern"
    ):
        load_policy_files([write(tmp_path, bad)])


def test_a_set_without_plans_is_refused(tmp_path: Path) -> None:
    """Every account has a plan: a set with none (plans.yaml moved away) names its directory."""
    services = write(tmp_path, GOOD.split("plans:")[0], "services.yaml")
    with pytest.raises(PolicyError) as info:
        load_policy_files([services])
    assert str(info.value).startswith(f"{tmp_path}/: plans: no plan defined")


def test_origins_name_the_file_of_each_entry(tmp_path: Path) -> None:
    """Errors about the set as a whole (a plan dropped on reload) can name the defining file."""
    a = write(tmp_path, GOOD.split("plans:")[0], "a.yaml")
    b = write(tmp_path, "plans:" + GOOD.split("plans:")[1], "b.yaml")
    origins = load_policy_files([a, b]).origins
    assert origins["plans.p"] == str(b) and origins["services.data"] == str(a)
