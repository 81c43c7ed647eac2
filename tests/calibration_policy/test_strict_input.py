"""Strict input: values and evidence are numbers as written, never text coerced into one; an error names the value
in its domain's words ("NYSE Arca spread markup"), never a field of ours (``recommended_iv_multiplier.arca``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from calibration_policy import CalibrationRun, InvalidRunError, open_store, record_calibration_result
from calibration_policy.plugin import Domain, Extracted, hookimpl
from calibration_policy.plugins import get_plugin_manager

from .conftest import T0, build_result

VENUES = {"global": "Global", "nyse": "NYSE", "arca": "NYSE Arca", "bzx": "Cboe BZX"}


class SpreadsDomain(Domain):
    name = "spreads"
    title = "Quote-spread markups"
    parameter_label = "spread markup"
    parameter_label_plural = "spread markups"
    sample_unit = "fills"
    sources = ("fills",)

    def extract(self, result: Mapping[str, Any]) -> Extracted:
        return Extracted(recommended=dict(result["markups_bp"]), sample_size=result["fills"], vega_sum=None)

    def scope_label(self, scope: str, details: Mapping[str, Any] | None = None) -> str:
        return VENUES.get(scope, scope)


class Plugin:
    @hookimpl
    def register_domains(self, register):
        register(SpreadsDomain())


@pytest.fixture
def spreads():
    get_plugin_manager().register(Plugin(), name="spreads-domain")
    yield
    get_plugin_manager().unregister(name="spreads-domain")


@pytest.mark.parametrize(
    "value, message",
    [
        (math.nan, "The NYSE Arca spread markup is NaN; it must be a finite number."),
        (math.inf, "The NYSE Arca spread markup is infinite; it must be a finite number."),
        ("0.5", "The NYSE Arca spread markup must be a number, not '0.5'."),
    ],
)
def test_a_bad_value_is_named_in_the_domains_words_and_nothing_is_written(spreads, tmp_path: Path, value, message):
    result = {"markups_bp": {"global": 1.2, "arca": value}, "fills": 1243}
    with pytest.raises(InvalidRunError) as caught:
        record_calibration_result(result, "QQQ", "fills", history_dir=tmp_path / "runs", timestamp=T0, domain="spreads")
    assert str(caught.value) == message
    assert "recommended_iv_multiplier" not in str(caught.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("*.json"))


def test_text_that_looks_like_a_number_is_refused_in_a_stored_run(tmp_path: Path):
    run = record_calibration_result(build_result(), "SPY", "live", history_dir=tmp_path, timestamp=T0)
    stored = json.loads((tmp_path / f"{run.run_id}.json").read_text())
    for field, bad in (("recommended_iv_multiplier", {"global": "1.05"}), ("sample_size", "412"), ("vega_sum", "1e4")):
        with pytest.raises(ValidationError):
            CalibrationRun.model_validate({**stored, field: bad})
    assert CalibrationRun.model_validate({**stored, "sample_size": 412, "vega_sum": 12400}).vega_sum == 12400.0


def test_run_files_keep_the_seeds_fields_and_load_as_written_before(tmp_path: Path):
    """A file of the previous release (the design's §3 keys, whole numbers where they are whole) loads."""
    folder = tmp_path / "calibration_runs"
    folder.mkdir()
    written = {
        "schema_version": 1,
        "timestamp": "2025-12-10T15:30:00+00:00",
        "underlying": "SPY",
        "source": "harvested",
        "config": {},
        "config_hash": "",
        "global_metrics": {"n": 412, "vega_sum": 12400, "recommended_iv_multiplier": 1},
        "bands": {"weekly": {"min_dte": 3, "max_dte": 10, "recommended_iv_multiplier": 1.07}},
        "recommended_iv_multiplier": {"global": 1, "weekly": 1.07},
        "smoothed_iv_multiplier": {"global": 1, "weekly": 1.07},
        "sample_size": 412,
        "vega_sum": 12400,
        "applied": True,
        "applied_reason": "Applied: global 1.00 → 1.00",
    }
    (folder / "20251210T153000.000000Z_SPY_harvested.json").write_text(json.dumps(written))
    (run,) = open_store(folder).latest("SPY", 5)
    assert run.recommended == {"global": 1.0, "weekly": 1.07} and run.sample_size == 412 and run.vega_sum == 12400.0
    again = json.loads(run.model_dump_json())
    assert {"recommended_iv_multiplier", "smoothed_iv_multiplier", "sample_size", "vega_sum"} <= set(again)
