"""Calibrate the synthetic vol surface against a market option chain.

The model prices options off ``synthetic_iv`` (its base IV, before any multiplier). The market
trades them at ``market_iv``. The recommended IV multiplier is the vega-weighted mean market IV
divided by the vega-weighted mean synthetic IV, so high-vega (near-the-money, longer-dated)
options, whose quotes say most about fair volatility, count most. It is computed globally, per
DTE band and per (DTE, |delta|) bucket, after illiquid quotes are dropped.

This stand-in has no broker: the "live" source simply reads the given date's harvested chain
(see the CLI scripts). Every result is plain JSON (ints, floats, strings), never NaN.
"""

from __future__ import annotations

import re
from datetime import date as Date
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .calibration_config import CalibrationConfig, LiquidityFilters
from .errors import AgentInputError, HarvestDataError

REQUIRED_COLUMNS = (
    "date", "underlying", "expiry", "dte", "strike", "option_type", "spot", "bid", "ask",
    "volume", "open_interest", "market_iv", "synthetic_iv", "delta", "vega",
)  # fmt: skip
NUMERIC_COLUMNS = (
    "dte", "strike", "spot", "bid", "ask", "volume", "open_interest", "market_iv", "synthetic_iv", "delta", "vega",
)  # fmt: skip
SKEW_ANCHORS = (0.1, 0.25, 0.5)
SKEW_WINDOW = 0.05  # options within +/- this |delta| of an anchor inform its ratio
DIGITS = 6

_SYMBOL = re.compile(r"\^?[A-Z0-9][A-Z0-9.\-]{0,14}", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def check_underlying(symbol: object) -> str:
    """The upper-cased symbol if it is safe to use in a file name, else a clear error."""
    text = symbol.upper() if isinstance(symbol, str) else ""
    if not _SYMBOL.fullmatch(text) or ".." in text:
        raise AgentInputError(
            f"{symbol!r} is not a valid underlying symbol: use 1 to 16 letters, digits, '.' or '-' "
            "(optionally after a leading '^'), for example SPY or BRK.B."
        )
    return text


def harvest_dir_for(harvest_root: str | Path, underlying: str) -> Path:
    """``<harvest_root>/<UNDERLYING>``, validating the symbol before it becomes part of a path."""
    return Path(harvest_root) / check_underlying(underlying)


def parse_date(value: str | Date) -> Date:
    """A calendar date from a ``date`` or a strict ``YYYY-MM-DD`` string."""
    if isinstance(value, Date):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return Date.fromisoformat(value)
        except ValueError:
            pass
    raise AgentInputError(f"{value!r} is not a valid date: use YYYY-MM-DD, for example 2025-12-10.")


def available_dates(harvest_dir: str | Path) -> list[str]:
    """The dates (YYYY-MM-DD, ascending) that have a harvested chain in ``harvest_dir``."""
    folder = Path(harvest_dir)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.parquet") if _DATE.fullmatch(p.stem))


def latest_date(harvest_dir: str | Path) -> str:
    """The most recent harvested date in one underlying's folder."""
    folder = Path(harvest_dir)
    dates = available_dates(folder)
    if not dates:
        raise _nothing_harvested(folder, _symbol_of(folder), "")
    return dates[-1]


def _nothing_harvested(folder: Path, symbol: str, on_day: str) -> HarvestDataError:
    why = "the folder holds no <YYYY-MM-DD>.parquet files" if folder.is_dir() else "the folder does not exist"
    return HarvestDataError(
        f"No harvested data for {symbol}{on_day} in {folder}: {why}; check the symbol and --harvest-dir."
    )


def _symbol_of(harvest_dir: Path) -> str:
    if harvest_dir.name != harvest_dir.name.upper():
        raise AgentInputError(
            f"{harvest_dir} is not a harvest folder for one underlying (its name must be the symbol, "
            "e.g. data/harvest/SPY); pass <harvest dir>/<UNDERLYING>."
        )
    return check_underlying(harvest_dir.name)


def load_harvested_chain(harvest_dir: str | Path, date: str | Date) -> pd.DataFrame:
    """Read ``<harvest_dir>/<date>.parquet``; ``harvest_dir`` is one underlying's folder."""
    folder = Path(harvest_dir)
    symbol = _symbol_of(folder)
    day = parse_date(date).isoformat()
    path = folder / f"{day}.parquet"
    if not path.exists():
        dates = available_dates(folder)
        if not dates:
            raise _nothing_harvested(folder, symbol, f" on {day}")
        raise HarvestDataError(
            f"No harvested data for {symbol} on {day} in {folder}: available dates run {dates[0]} to {dates[-1]} "
            f"({len(dates)} days)."
        )
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarvestDataError(
            f"{path} is not a readable Parquet file ({reason}); re-harvest that date or remove the file."
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise HarvestDataError(
            f"{path} is missing the column(s) {', '.join(missing)} that calibration needs; re-harvest that date."
        )
    if table.num_rows == 0:
        raise HarvestDataError(f"{path} holds no options; re-harvest that date.")
    chain = table.to_pandas()
    found = _single(chain, "underlying", "The chain"), _single(chain, "date", "The chain")
    if found != (symbol, day):
        raise HarvestDataError(f"{path} holds data for {found[0]} on {found[1]}, not {symbol} on {day}; re-harvest it.")
    return chain


def _single(chain: pd.DataFrame, column: str, what: str) -> str:
    """The one value of ``column`` (dates as YYYY-MM-DD); a chain is one underlying on one day."""
    values = chain[column]
    if column == "date":
        parsed = pd.to_datetime(values, errors="coerce")
        if parsed.isna().any():
            raise AgentInputError(f"{what} has values in its 'date' column that are not dates.")
        values = parsed.dt.strftime("%Y-%m-%d")
    unique = sorted({str(v) for v in values})
    if len(unique) != 1:
        raise AgentInputError(
            f"{what} mixes {len(unique)} values in its {column!r} column ({', '.join(unique[:3])}); "
            "calibrate one underlying on one day at a time."
        )
    return unique[0]


def _prepare(chain: object) -> tuple[pd.DataFrame, str, str]:
    """The chain's required columns with numbers coerced (junk becomes NaN), its symbol and date."""
    if not isinstance(chain, pd.DataFrame):
        raise AgentInputError(f"The option chain must be a pandas DataFrame, not {type(chain).__name__}.")
    missing = [c for c in REQUIRED_COLUMNS if c not in chain.columns]
    if missing:
        raise AgentInputError(f"The option chain is missing the column(s) {', '.join(missing)}.")
    if chain.empty:
        raise AgentInputError("The option chain is empty; there is nothing to calibrate against.")
    frame = chain.loc[:, list(REQUIRED_COLUMNS)].copy()
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["expiry"] = pd.to_datetime(frame["expiry"], errors="coerce").dt.strftime("%Y-%m-%d")
    return frame, _single(chain, "underlying", "The option chain"), _single(chain, "date", "The option chain")


def liquid_mask(chain: pd.DataFrame, filters: LiquidityFilters) -> pd.Series:
    """True for options whose numbers are all usable and that pass every liquidity filter."""
    x = chain[list(NUMERIC_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    mid = (x["bid"] + x["ask"]) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_spread = (x["ask"] - x["bid"]) / mid
    usable = np.isfinite(x).all(axis=1) & (x[["market_iv", "synthetic_iv", "vega", "strike", "spot"]] > 0).all(axis=1)
    return (
        usable
        & (x["dte"] >= 0)
        & (x["volume"] >= filters.min_volume)
        & (x["open_interest"] >= filters.min_open_interest)
        & (mid > 0)
        & (x["ask"] >= x["bid"])
        & (rel_spread <= filters.max_rel_spread)
        & (x["vega"] >= filters.min_vega)
    )


def _r(value: float) -> float:
    return round(float(value), DIGITS)


def _arrays(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return group["vega"].to_numpy(), group["market_iv"].to_numpy(), group["synthetic_iv"].to_numpy()


def _multiplier(group: pd.DataFrame) -> float:
    """Vega-weighted mean market IV / vega-weighted mean synthetic IV."""
    vega, market, synthetic = _arrays(group)
    return float(vega @ market / (vega @ synthetic))


def _metrics(group: pd.DataFrame) -> dict[str, Any]:
    """n, vega_sum, errors after applying the group's own recommended multiplier."""
    vega, market, synthetic = _arrays(group)
    m = float(vega @ market / (vega @ synthetic))
    error = np.abs(market - synthetic * m)
    return {
        "n": len(group),
        "vega_sum": _r(vega.sum()),
        "mae_vol_points": _r(error.mean() * 100.0),
        "vega_weighted_mae_pct": _r(vega @ (error / market) / vega.sum() * 100.0),
        "recommended_iv_multiplier": _r(m),
    }


def _labels(edges: list[Any]) -> list[str]:
    """'7-14' for integer edges (DTE), '0.10-0.25' for fractional ones (|delta|)."""
    fmt = "{:d}" if all(isinstance(e, int) for e in edges) else "{:.2f}"
    return [f"{fmt.format(lo)}-{fmt.format(hi)}" for lo, hi in pairwise(edges)]


def _bucket_labels(values: pd.Series, edges: list[Any]) -> pd.Series:
    """'lo-hi' for values in [lo, hi) (the last bucket includes hi); None outside the edges."""
    labels = _labels(edges)
    index = np.searchsorted(np.asarray(edges, dtype=float), values.to_numpy(), side="right") - 1
    index = np.where(values.to_numpy() == edges[-1], len(labels) - 1, index)
    return pd.Series([labels[i] if 0 <= i < len(labels) else None for i in index], index=values.index)


def _buckets(liquid: pd.DataFrame, config: CalibrationConfig) -> list[dict[str, Any]]:
    """Metrics per non-empty (DTE, |delta|) bucket, in edge order."""
    keyed = liquid.assign(
        dte_bucket=_bucket_labels(liquid["dte"], config.bucket_by_dte),
        abs_delta_bucket=_bucket_labels(liquid["delta"].abs(), config.bucket_by_abs_delta),
    ).dropna(subset=["dte_bucket", "abs_delta_bucket"])
    dte_order, delta_order = _labels(config.bucket_by_dte), _labels(config.bucket_by_abs_delta)
    out = []
    for (dte_bucket, delta_bucket), group in keyed.groupby(["dte_bucket", "abs_delta_bucket"]):
        metrics = _metrics(group)
        out.append(
            {
                "dte_bucket": dte_bucket,
                "abs_delta_bucket": delta_bucket,
                "n": metrics["n"],
                "mae_vol_points": metrics["mae_vol_points"],
                "recommended_iv_multiplier": metrics["recommended_iv_multiplier"],
            }
        )
    return sorted(out, key=lambda b: (dte_order.index(b["dte_bucket"]), delta_order.index(b["abs_delta_bucket"])))


def _anchor_ratios(liquid: pd.DataFrame) -> dict[str, float]:
    """Market/synthetic IV near a few |delta| anchors: a minimal read of the skew misfit."""
    abs_delta = liquid["delta"].abs()
    ratios = {}
    for anchor in SKEW_ANCHORS:
        near = liquid[(abs_delta - anchor).abs() <= SKEW_WINDOW + 1e-12]
        if len(near):
            ratios[f"{anchor:.2f}"] = _r(_multiplier(near))
    return ratios


def _snapshot(
    chain: pd.DataFrame, liquid: pd.DataFrame, underlying: str, day: str, config: CalibrationConfig
) -> dict[str, Any]:
    """Facts about the day's market a policy can use to judge the calibration's reliability."""
    near_atm = liquid[(liquid["delta"].abs() - 0.5).abs() <= 0.1]
    if near_atm.empty:
        near_atm = liquid.loc[[(liquid["delta"].abs() - 0.5).abs().idxmin()]]
    atm_weights = near_atm["vega"] / near_atm["vega"].sum()
    mid = (liquid["bid"] + liquid["ask"]) / 2.0
    return {
        "underlying": underlying,
        "date": day,
        "source": config.source,
        "spot": _r(liquid["spot"].median()),
        "atm_iv": _r((atm_weights * near_atm["market_iv"]).sum()),
        "atm_synthetic_iv": _r((atm_weights * near_atm["synthetic_iv"]).sum()),
        "n_total": len(chain),
        "n_liquid": len(liquid),
        "liquid_fraction": _r(len(liquid) / len(chain)),
        "median_rel_spread": _r(((liquid["ask"] - liquid["bid"]) / mid).median()),
        "total_volume": int(liquid["volume"].sum()),
    }


def _rows(
    liquid: pd.DataFrame, bands: dict[str, float], global_m: float, config: CalibrationConfig
) -> list[dict[str, Any]]:
    """One plain dict per liquid option, with the IV the recommended surface would give it."""
    columns = ["expiry", "dte", "strike", "option_type", "delta", "vega", "market_iv", "synthetic_iv"]
    rows = []
    for expiry, dte, strike, option_type, delta, vega, market, synthetic in zip(*(liquid[c].tolist() for c in columns)):
        band = config.band_of(int(dte))
        rows.append(
            {
                "expiry": expiry if isinstance(expiry, str) else None,
                "dte": int(dte),
                "strike": strike,
                "option_type": str(option_type),
                "delta": delta,
                "vega": vega,
                "market_iv": market,
                "synthetic_iv": synthetic,
                "band": band,
                "fitted_iv": _r(synthetic * (bands[band] if band in bands else global_m)),
            }
        )
    return rows


def run_calibration_extended(config: CalibrationConfig, chain: pd.DataFrame) -> dict[str, Any]:
    """Calibrate one underlying's chain on one day; see the module docstring for the math."""
    frame, underlying, day = _prepare(chain)
    mask = liquid_mask(frame, config.filters)
    liquid = frame[mask]
    if liquid.empty:
        raise AgentInputError(
            f"All {len(frame)} options in the chain failed the liquidity filters or have unusable IVs/vega; "
            "check the data or relax the filters."
        )
    global_metrics = _metrics(liquid)
    bands: dict[str, dict[str, Any]] = {}
    empty_bands = []
    for name, band in config.bands.items():
        group = liquid[(liquid["dte"] >= band.min_dte) & (liquid["dte"] <= band.max_dte)]
        if group.empty:
            empty_bands.append(name)
            continue
        metrics = _metrics(group)
        del metrics["vega_weighted_mae_pct"]
        bands[name] = {"min_dte": band.min_dte, "max_dte": band.max_dte, **metrics}
    band_multipliers = {name: b["recommended_iv_multiplier"] for name, b in bands.items()}
    result: dict[str, Any] = {
        "dropped_count": int((~mask).sum()),
        "global_metrics": global_metrics,
        "bands": bands,
        "empty_bands": empty_bands,
        "buckets": _buckets(liquid, config),
        "snapshot_sensors": _snapshot(frame, liquid, underlying, day, config),
    }
    if config.fit_skew:
        result["anchor_ratios"] = _anchor_ratios(liquid)
    if config.emit_recommended_vol_surface:
        result["recommended_vol_surface"] = {
            "iv_multiplier": global_metrics["recommended_iv_multiplier"],
            "bands": band_multipliers,
        }
    if config.return_rows:
        result["rows"] = _rows(liquid, band_multipliers, global_metrics["recommended_iv_multiplier"], config)
    return result


def run_historical_calibration_from_harvest(
    config: CalibrationConfig, harvest_dir: str | Path, date: str | Date
) -> dict[str, Any]:
    """Calibrate against the chain harvested on ``date``; ``harvest_dir`` is e.g. ``data/harvest/SPY``."""
    return run_calibration_extended(config, load_harvested_chain(harvest_dir, date))
