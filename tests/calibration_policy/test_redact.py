"""Secrets never leave the process: the masking rule, and store settings that name where the URL is kept."""

from __future__ import annotations

import logging

import pytest

from calibration_policy import CalibrationUpdatePolicy, redact
from calibration_policy.errors import PolicyError, StoreError
from calibration_policy.redact import MaskingFilter, mask, mask_data
from calibration_policy.stores import resolve, scheme_of


@pytest.fixture(autouse=True)
def nothing_remembered(monkeypatch):
    """Each test starts with no password remembered, so the patterns themselves are what is checked."""
    monkeypatch.setattr(redact, "_known", set())


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://calib:S3cretPw%21x@db.example:5432/calib", "postgresql://calib:***@db.example:5432/calib"),
        ("postgres://u:p@ss:w0rd@host/db", "postgres://u:***@host/db"),
        (
            "postgresql://calib@db/calib?sslmode=require&password=S3cret!",
            "postgresql://calib@db/calib?sslmode=require&password=***",
        ),
        (
            "host=db.example port=5432 dbname=calib user=calib password=S3cretPw!x",
            "host=db.example port=5432 dbname=calib user=calib password=***",
        ),
        ("host=db password = 'two words \\' quote' dbname=x", "host=db password = *** dbname=x"),
        ("postgresql://calib@db.example/calib", "postgresql://calib@db.example/calib"),  # nothing secret: unchanged
        ("Error: the store at postgresql://a:b1@h/d failed", "Error: the store at postgresql://a:***@h/d failed"),
    ],
)
def test_mask_hides_the_password_and_keeps_where(text, shown):
    assert mask(text) == shown


def test_mask_data_masks_nested_strings_and_leaves_numbers():
    data = {"policy": {"store": "postgresql://u:hunter22@h/d", "min_sample_size": 150}, "list": ["password=hunter22"]}
    assert mask_data(data) == {
        "policy": {"store": "postgresql://u:***@h/d", "min_sample_size": 150},
        "list": ["password=***"],
    }


def test_a_remembered_password_is_hidden_wherever_it_appears():
    redact.remember_url("postgresql://calib:S3cretPw%21x@db/calib")
    assert mask("driver said: authentication failed for S3cretPw!x") == "driver said: authentication failed for ***"
    redact.remember("abc")  # too short to hide safely: ordinary words would vanish
    assert mask("abc") == "abc"


def test_the_policy_json_masks_its_store_but_keeps_it_for_the_process():
    policy = CalibrationUpdatePolicy(store="postgresql://calib:S3cretPw%21x@db/calib")
    assert policy.model_dump(mode="json")["store"] == "postgresql://calib:***@db/calib"
    assert policy.store == "postgresql://calib:S3cretPw%21x@db/calib"


def test_the_not_a_url_error_masks_a_conninfo_password():
    with pytest.raises(StoreError) as caught:
        scheme_of("host=db.example dbname=calib password=S3cretPw!x")
    assert "S3cretPw" not in str(caught.value) and "password=***" in str(caught.value)
    with pytest.raises(PolicyError) as caught:
        CalibrationUpdatePolicy(store="host=db.example dbname=calib password=S3cretPw!x")
    assert "S3cretPw" not in str(caught.value)


def test_logged_lines_and_tracebacks_are_masked(caplog):
    logger = redact.get_logger("calibration_policy.test_redact")
    with caplog.at_level(logging.WARNING, logger="calibration_policy.test_redact"):
        logger.warning("cannot reach %s", "postgresql://u:S3cretPw@h/d")
        try:
            raise RuntimeError("connect to host=h password=S3cretPw failed")
        except RuntimeError:
            logger.exception("store failed")
    assert "S3cretPw" not in caplog.text and "postgresql://u:***@h/d" in caplog.text
    record = logging.LogRecord("other", logging.ERROR, __file__, 1, "url %s", ("postgresql://u:S3cretPw@h/d",), None)
    assert MaskingFilter().filter(record) and record.getMessage() == "url postgresql://u:***@h/d"


def test_store_setting_may_name_an_environment_variable(monkeypatch):
    monkeypatch.setenv("CALIB_TEST_STORE_URL", "postgresql://calib:FromEnv99@db/calib")
    policy = CalibrationUpdatePolicy(store="env:CALIB_TEST_STORE_URL")
    assert resolve(policy.store) == "postgresql://calib:FromEnv99@db/calib"
    assert mask("saw FromEnv99") == "saw ***"  # resolving remembers it
    monkeypatch.delenv("CALIB_TEST_STORE_URL")
    with pytest.raises(StoreError, match="CALIB_TEST_STORE_URL, which is not set"):
        resolve(policy.store)


def test_store_setting_may_name_a_file(tmp_path):
    secret = tmp_path / "calib_store"
    secret.write_text("postgresql://calib:FromFile99@db/calib\n")
    assert resolve(f"file:{secret}") == "postgresql://calib:FromFile99@db/calib"
    with pytest.raises(StoreError, match="cannot be read"):
        resolve(f"file:{tmp_path / 'missing'}")
    secret.write_text("  \n")
    with pytest.raises(StoreError, match="is empty"):
        resolve(f"file:{secret}")


@pytest.mark.parametrize("setting", ["env:", "env:1BAD", "file:  "])
def test_a_malformed_reference_fails_with_the_policy(setting):
    with pytest.raises(PolicyError):
        CalibrationUpdatePolicy(store=setting)
