"""The stand-in calibration: result shape, the multiplier math, filters and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from src.calibration_config import CalibrationConfig, DteBand
from src.calibration_extended import (
    check_underlying,
    harvest_dir_for,
    run_calibration_extended,
    run_historical_calibration_from_harvest,
)
from src.errors import AgentInputError, HarvestDataError

HARVEST_ROOT = Path(__file__).resolve().parents[2] / "data" / "harvest"


def option(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "date": "2025-12-10", "underlying": "SPY", "expiry": "2025-12-15", "dte": 5, "strike": 600.0,
        "option_type": "call", "spot": 600.0, "bid": 9.5, "ask": 10.5, "volume": 100, "open_interest": 500,
        "market_iv": 0.22, "synthetic_iv": 0.20, "delta": 0.5, "vega": 10.0,
    }  # fmt: skip
    base.update(overrides)
    return base


@pytest.fixture
def tiny_chain() -> pd.DataFrame:
    """Three liquid options (weekly, monthly, between bands) and one without volume."""
    return pd.DataFrame(
        [
            option(dte=5, vega=10.0, market_iv=0.22, synthetic_iv=0.20, delta=0.5),
            option(dte=30, vega=30.0, market_iv=0.21, synthetic_iv=0.20, delta=-0.25, option_type="put"),
            option(dte=15, vega=20.0, market_iv=0.18, synthetic_iv=0.15, delta=0.1),
            option(dte=30, vega=50.0, market_iv=0.40, synthetic_iv=0.20, volume=0),
        ]
    )


def test_multiplier_math_matches_hand_computation(tiny_chain: pd.DataFrame) -> None:
    result = run_calibration_extended(CalibrationConfig(), tiny_chain)
    g = result["global_metrics"]
    # (10*.22 + 30*.21 + 20*.18) / (10*.20 + 30*.20 + 20*.15) = 12.1 / 11
    assert g["recommended_iv_multiplier"] == pytest.approx(1.1)
    assert g["n"] == 3 and g["vega_sum"] == pytest.approx(60.0)
    # |errors| after x1.1: 0, .01, .015 -> mean .008333 = 0.8333 vol points
    assert g["mae_vol_points"] == pytest.approx(0.833333, abs=1e-6)
    # vega-weighted relative: (30*.01/.21 + 20*.015/.18) / 60
    assert g["vega_weighted_mae_pct"] == pytest.approx((30 * 0.01 / 0.21 + 20 * 0.015 / 0.18) / 60 * 100, abs=1e-6)
    assert result["bands"]["weekly"]["recommended_iv_multiplier"] == pytest.approx(1.1)
    assert result["bands"]["monthly"]["recommended_iv_multiplier"] == pytest.approx(1.05)
    assert result["bands"]["monthly"]["mae_vol_points"] == 0.0
    assert result["recommended_vol_surface"] == {"iv_multiplier": 1.1, "bands": {"weekly": 1.1, "monthly": 1.05}}


def test_liquidity_filter_counts_each_failure(tiny_chain: pd.DataFrame) -> None:
    failing = pd.DataFrame(
        [
            option(volume=0),
            option(open_interest=3),
            option(bid=1.0, ask=10.0),  # relative spread 1.64
            option(vega=0.1),
            option(market_iv=float("nan")),
            option(bid=11.0, ask=10.0),  # crossed quote
            option(market_iv="n/a"),
        ]
    )
    result = run_calibration_extended(CalibrationConfig(), pd.concat([tiny_chain, failing], ignore_index=True))
    assert result["dropped_count"] == 1 + len(failing)
    assert result["global_metrics"]["n"] == 3
    assert result["snapshot_sensors"]["n_total"] == 3 + 1 + len(failing)


def test_result_shape_and_json_safety() -> None:
    config = CalibrationConfig(return_rows=True)
    result = run_historical_calibration_from_harvest(config, HARVEST_ROOT / "SPY", "2025-12-10")
    assert set(result) == {
        "dropped_count", "global_metrics", "bands", "empty_bands", "buckets", "anchor_ratios",
        "recommended_vol_surface", "snapshot_sensors", "rows",
    }  # fmt: skip
    assert set(result["global_metrics"]) == {
        "n", "vega_sum", "mae_vol_points", "vega_weighted_mae_pct", "recommended_iv_multiplier"
    }  # fmt: skip
    assert result["bands"]["weekly"]["min_dte"] == 3 and result["bands"]["monthly"]["max_dte"] == 40
    assert set(result["bands"]["weekly"]) == {
        "min_dte", "max_dte", "n", "vega_sum", "mae_vol_points", "recommended_iv_multiplier"
    }  # fmt: skip
    assert result["empty_bands"] == []
    bucket = result["buckets"][0]
    assert set(bucket) == {"dte_bucket", "abs_delta_bucket", "n", "mae_vol_points", "recommended_iv_multiplier"}
    assert (bucket["dte_bucket"], bucket["abs_delta_bucket"]) == ("0-7", "0.00-0.10")
    assert sum(b["n"] for b in result["buckets"]) == result["global_metrics"]["n"]
    assert set(result["anchor_ratios"]) == {"0.10", "0.25", "0.50"}
    assert set(result["recommended_vol_surface"]["bands"]) == {"weekly", "monthly"}
    sensors = result["snapshot_sensors"]
    assert (sensors["underlying"], sensors["date"], sensors["source"]) == ("SPY", "2025-12-10", "harvested")
    assert sensors["spot"] > 0 and 0.05 < sensors["atm_iv"] < 1
    assert len(result["rows"]) == result["global_metrics"]["n"]
    json.dumps(result, allow_nan=False)  # plain types only, no NaN


def test_optional_sections_follow_the_config_flags(tiny_chain: pd.DataFrame) -> None:
    config = CalibrationConfig(fit_skew=False, emit_recommended_vol_surface=False, return_rows=False)
    result = run_calibration_extended(config, tiny_chain)
    assert not {"anchor_ratios", "recommended_vol_surface", "rows"} & set(result)


def test_band_without_options_is_listed_not_reported(tiny_chain: pd.DataFrame) -> None:
    config = CalibrationConfig(
        bands={"weekly": DteBand(min_dte=3, max_dte=10), "leaps": DteBand(min_dte=200, max_dte=900)}
    )
    result = run_calibration_extended(config, tiny_chain)
    assert result["empty_bands"] == ["leaps"]
    assert set(result["bands"]) == {"weekly"}
    assert result["recommended_vol_surface"]["bands"] == {"weekly": 1.1}


def test_config_round_trips_and_rejects_typos() -> None:
    config = CalibrationConfig(source="live")
    assert CalibrationConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["bands"]["weekly"] == {"min_dte": 3, "max_dte": 10}
    with pytest.raises(AgentInputError, match="filters.min_volum"):
        CalibrationConfig.from_dict({"filters": {"min_volum": 3}})
    with pytest.raises(AgentInputError, match="overlap"):
        CalibrationConfig.from_dict(
            {"bands": {"a": {"min_dte": 1, "max_dte": 10}, "b": {"min_dte": 10, "max_dte": 20}}}
        )


@pytest.mark.parametrize("symbol", ["../SPY", "SP/Y", "SPY..", "", "SPY\x00", "ÅPL", "A" * 17, "-SPY", 42])
def test_unsafe_symbols_never_become_paths(symbol: object) -> None:
    with pytest.raises(AgentInputError, match="not a valid underlying symbol"):
        harvest_dir_for("data/harvest", symbol)  # type: ignore[arg-type]


def test_valid_symbols_are_upper_cased() -> None:
    assert [check_underlying(s) for s in ("spy", "BRK.B", "^VIX")] == ["SPY", "BRK.B", "^VIX"]


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        (pd.DataFrame([option()]).drop(columns=["vega", "delta"]), "missing the column\\(s\\) delta, vega"),
        (pd.DataFrame(columns=list(option())), "empty"),
        (pd.DataFrame([option(volume=0)]), "All 1 options in the chain failed the liquidity filters"),
        (pd.DataFrame([option(), option(underlying="QQQ")]), "mixes 2 values in its 'underlying' column"),
        (pd.DataFrame([option(), option(date="2025-12-11")]), "mixes 2 values in its 'date' column"),
        ([option()], "must be a pandas DataFrame"),
    ],
)
def test_bad_chains_are_explained(chain: object, message: str) -> None:
    with pytest.raises(AgentInputError, match=message):
        run_calibration_extended(CalibrationConfig(), chain)  # type: ignore[arg-type]


def test_missing_date_names_the_available_range() -> None:
    with pytest.raises(HarvestDataError) as info:
        run_historical_calibration_from_harvest(CalibrationConfig(), HARVEST_ROOT / "SPY", "2025-12-25")
    assert str(info.value) == (
        f"No harvested data for SPY on 2025-12-25 in {HARVEST_ROOT / 'SPY'}: "
        "available dates run 2025-09-11 to 2025-12-10 (65 days)."
    )


@pytest.mark.parametrize("day", ["2025-13-01", "10/12/2025", "20251210", "2025-12-10T00:00"])
def test_malformed_dates_are_rejected(day: str) -> None:
    with pytest.raises(AgentInputError, match="is not a valid date: use YYYY-MM-DD"):
        run_historical_calibration_from_harvest(CalibrationConfig(), HARVEST_ROOT / "SPY", day)


def test_corrupt_and_incomplete_parquet_files_are_explained(tmp_path: Path) -> None:
    folder = tmp_path / "SPY"
    folder.mkdir()
    (folder / "2025-12-10.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(HarvestDataError, match=r"2025-12-10.parquet is not a readable Parquet file \(.+\)"):
        run_historical_calibration_from_harvest(CalibrationConfig(), folder, "2025-12-10")
    table = pq.read_table(HARVEST_ROOT / "SPY" / "2025-12-10.parquet").drop_columns(["vega"])
    pq.write_table(table, folder / "2025-12-09.parquet")
    with pytest.raises(HarvestDataError, match=r"2025-12-09.parquet is missing the column\(s\) vega"):
        run_historical_calibration_from_harvest(CalibrationConfig(), folder, "2025-12-09")


def test_a_file_holding_another_day_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "SPY"
    folder.mkdir()
    pq.write_table(pq.read_table(HARVEST_ROOT / "SPY" / "2025-12-10.parquet"), folder / "2025-12-09.parquet")
    with pytest.raises(HarvestDataError, match="holds data for SPY on 2025-12-10, not SPY on 2025-12-09"):
        run_historical_calibration_from_harvest(CalibrationConfig(), folder, "2025-12-09")


def test_harvest_dir_must_be_one_underlyings_folder() -> None:
    with pytest.raises(AgentInputError, match="not a harvest folder for one underlying"):
        run_historical_calibration_from_harvest(CalibrationConfig(), HARVEST_ROOT, "2025-12-10")


def test_empty_table_file_is_explained(tmp_path: Path) -> None:
    folder = tmp_path / "SPY"
    folder.mkdir()
    schema = pq.read_schema(HARVEST_ROOT / "SPY" / "2025-12-10.parquet")
    pq.write_table(pa.Table.from_pylist([], schema=schema), folder / "2025-12-10.parquet")
    with pytest.raises(HarvestDataError, match="2025-12-10.parquet holds no options; re-harvest that date."):
        run_historical_calibration_from_harvest(CalibrationConfig(), folder, "2025-12-10")
