"""Durations, the spec, and the connection Secret: what the schema cannot catch is caught here."""

from __future__ import annotations

import base64

import pytest
from airbyte_watch.airbyte.server_config import (
    InvalidSecret,
    decode_secret_data,
    parse_server_config,
)
from airbyte_watch.core.durations import format_duration, parse_duration
from airbyte_watch.core.spec import InvalidSpec, parse_job_id, parse_spec

PEM = """-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIUUfS8Uqk+7mD5Kq6aSj0eQ0e1XGswCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJdGVzdC1yb290MB4XDTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAw
MDAwMFowFDESMBAGA1UEAwwJdGVzdC1yb290MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAE
-----END CERTIFICATE-----
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("1.5h", 5400), ("168h", 604800), ("250ms", 0.25), ("2h3m4s", 7384)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "-5s", "5", "5 s", "s5", "1m-1s", "1d"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 45, 60, 150, 3600, 3660, 604800)] == [
        "0s",
        "45s",
        "1m",
        "2m30s",
        "1h",
        "1h1m",
        "7d",
    ]


@pytest.mark.parametrize(
    ("raw", "value"), [(1, 1), ("123", 123), (2**63 - 1, 2**63 - 1), ("9223372036854775807", 2**63 - 1)]
)
def test_job_ids(raw: object, value: int) -> None:
    assert parse_job_id(raw) == value


@pytest.mark.parametrize("raw", ["abc", -1, 0, 1.5, 2**63, "9223372036854775808", True, "", " 12", "١٢"])
def test_not_job_ids(raw: object) -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.jobId"):
        parse_job_id(raw)


def test_spec_defaults_match_the_crd() -> None:
    spec = parse_spec({"jobId": "42"}, "airbyte-default")
    assert (spec.job_id, spec.server_secret, spec.poll_interval, spec.timeout) == (
        42,
        "airbyte-default",
        30.0,
        604800.0,
    )
    assert spec.backoff_exponential and spec.backoff_max_delay == 300.0
    assert spec.on_unknown_status == "Fail"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "jobId"),
        ({"jobId": 1, "pollInterval": "0s"}, "pollInterval"),
        ({"jobId": 1, "pollInterval": "fast"}, "pollInterval"),
        ({"jobId": 1, "timeout": "0s"}, "timeout"),
        ({"jobId": 1, "backoff": {"maxDelay": "soon"}}, "maxDelay"),
        ({"jobId": 1, "onUnknownStatus": "Ignore"}, "onUnknownStatus"),
        ({"jobId": 1, "serverRef": {"name": "other-ns/secret"}}, "serverRef.name"),
        ({"jobId": 1, "expect": 1}, "expect"),
        ({"jobId": 1, "expect": {"minRowsSynced": -1}}, "expect.minRowsSynced"),
        ({"jobId": 1, "expect": {"minRowsSynced": "1"}}, "expect.minRowsSynced"),
        ({"jobId": 1, "expect": {"minRowsSynced": 1.5}}, "expect.minRowsSynced"),
        ({"jobId": 1, "expect": {"minRowsSynced": True}}, "expect.minRowsSynced"),
        ({"jobId": 1, "expect": {"minBytesSynced": 2**63}}, "expect.minBytesSynced"),
        ({"jobId": 1, "expect": {"minRowsSynced": 1, "minBytesSynced": "many"}}, "expect.minBytesSynced"),
    ],
)
def test_bad_specs_name_their_field(spec: dict, field: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(spec, "airbyte-default")
    assert caught.value.field == field


def test_expect_bounds() -> None:
    spec = parse_spec({"jobId": 1, "expect": {"minRowsSynced": 1, "minBytesSynced": 2**63 - 1}}, "s")
    assert (spec.min_rows_synced, spec.min_bytes_synced) == (1, 2**63 - 1)
    assert parse_spec({"jobId": 1, "expect": {"minBytesSynced": 0}}, "s").min_bytes_synced == 0
    for unset in ({"jobId": 1}, {"jobId": 1, "expect": {}}, {"jobId": 1, "expect": None}):
        spec = parse_spec(unset, "s")
        assert (spec.min_rows_synced, spec.min_bytes_synced) == (None, None)


def test_a_bad_expect_bound_names_the_field_in_the_message() -> None:
    with pytest.raises(InvalidSpec, match=r"^spec\.expect\.minRowsSynced: -1 is not a count"):
        parse_spec({"jobId": 1, "expect": {"minRowsSynced": -1}}, "s")


def test_server_config_kinds() -> None:
    assert parse_server_config({"url": "http://h:8001/api/public/v1/"}).auth_kind == "none"
    cfg = parse_server_config({"url": "https://api.airbyte.com/v1", "clientId": "i", "clientSecret": "s"})
    assert cfg.auth_kind == "clientCredentials"
    assert cfg.token_endpoint == "https://api.airbyte.com/v1/applications/token"
    assert parse_server_config({"url": "https://a/v1", "token": "t"}).auth_kind == "token"
    assert parse_server_config({"url": "https://a/v1", "username": "u", "password": "p"}).auth_kind == "basic"
    custom = parse_server_config(
        {"url": "https://a/v1", "clientId": "i", "clientSecret": "s", "tokenUrl": "https://auth/token"}
    )
    assert custom.token_endpoint == "https://auth/token"


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({}, "'url' is missing"),
        ({"url": "ftp://h/v1"}, "http:// or https://"),
        ({"url": "airbyte:8001"}, "http:// or https://"),
        ({"url": "https://user:hunter2@h/v1"}, "must not carry credentials"),
        ({"url": "https://h/v1", "clientId": "i", "clientSecret": "s", "token": "t"}, "both set"),
        ({"url": "https://h/v1", "clientId": "i"}, "without 'clientSecret'"),
        ({"url": "https://h/v1", "username": "u"}, "without 'password'"),
        ({"url": "https://h/v1", "caBundle": "not a pem"}, "not a PEM"),
        ({"url": "https://h/v1", "caBundle": PEM}, "no loadable PEM"),
        ({"url": "https://h/v1", "insecureSkipTLSVerify": "yes"}, "insecureSkipTLSVerify"),
    ],
)
def test_bad_secrets_name_the_key_not_the_value(values: dict, needle: str) -> None:
    with pytest.raises(InvalidSecret, match=needle) as caught:
        parse_server_config(values)
    assert "hunter2" not in str(caught.value)


def test_secret_repr_hides_credentials() -> None:
    cfg = parse_server_config({"url": "https://h/v1", "clientId": "i", "clientSecret": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(cfg)
    assert "s3cr3t-value" not in cfg.key


def test_secret_data_is_base64() -> None:
    encoded = {"url": base64.b64encode(b"https://h/v1").decode()}
    assert decode_secret_data(encoded) == {"url": "https://h/v1"}
    with pytest.raises(InvalidSecret, match="'url'"):
        decode_secret_data({"url": "%%%"})
