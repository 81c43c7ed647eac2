"""Write the bundled sample option chains to ``data/harvest/<UNDERLYING>/<YYYY-MM-DD>.parquet``.

The chains are synthetic but shaped like a harvested broker snapshot, so the example host in
``examples/options_agent`` and the calibration policy can be exercised end to end without a
broker. Each chain hides known "true" IV multipliers (market IV / model IV), recorded per date in
``data/harvest/MANIFEST.json`` together with the kind of day, so tests can check that a
calibration recovers them and that a policy treats thin, low-vega, noisy and regime-shift days
as intended.

Output is deterministic: every file is drawn from its own fixed seed and written by pyarrow with
fixed settings and no timestamps, so running the script twice gives byte-identical files (with
the same pyarrow version). Run from anywhere: ``python data/generate_sample_data.py``.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import date, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20251210
END_DATE = date(2025, 12, 10)
N_DAYS = 65
DEFAULT_OUT = Path(__file__).resolve().parent / "harvest"

# The agent's default liquidity filters (examples/options_agent/src/calibration_config.py).
# Liquid options are drawn to pass all of them, illiquid ones to fail at least one.
MIN_VOLUME, MIN_OPEN_INTEREST, MAX_REL_SPREAD = 1, 10, 0.5

BANDS = {"weekly": (3, 10), "monthly": (20, 40)}
BASE_MULTIPLIERS = {"global": 1.05, "weekly": 1.08, "monthly": 1.03}
REGIME_JUMP = 0.15
DAY_NOISE = {"ordinary": 0.005, "noisy": 0.04}
OPTION_NOISE = {"ordinary": 0.01, "noisy": 0.04}
WING_PREMIUM = 0.04  # market IV is up to 4% richer than the multiplier alone at |delta| -> 0

# Day index (0 = first of the 65 business days) of every special day, per underlying.
SPECIAL_DAYS: dict[str, dict[str, list[int]]] = {
    "SPY": {"thin": [8, 17, 29, 47, 58], "low_vega": [12, 24, 51, 61], "noisy": [6, 14, 21, 33, 54, 63]},
    "QQQ": {"thin": [9, 19, 31, 49, 56], "low_vega": [11, 26, 52, 60], "noisy": [7, 15, 23, 35, 48, 62]},
}
REGIME_SHIFT_DAY = {"SPY": 40, "QQQ": 42}
UNDERLYINGS = {"SPY": {"spot": 600.0, "atm_iv": 0.15}, "QQQ": {"spot": 520.0, "atm_iv": 0.19}}

_N = NormalDist()
_erf = np.vectorize(math.erf, otypes=[float])

SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("underlying", pa.string()),
        ("expiry", pa.date32()),
        ("dte", pa.int32()),
        ("strike", pa.float64()),
        ("option_type", pa.string()),
        ("spot", pa.float64()),
        ("bid", pa.float64()),
        ("ask", pa.float64()),
        ("volume", pa.int64()),
        ("open_interest", pa.int64()),
        ("market_iv", pa.float64()),
        ("synthetic_iv", pa.float64()),
        ("delta", pa.float64()),
        ("vega", pa.float64()),
    ]
)


def business_days(end: date = END_DATE, count: int = N_DAYS) -> list[date]:
    """The ``count`` consecutive weekdays ending on ``end`` (holidays are not skipped)."""
    days: list[date] = []
    day = end
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def day_kind(underlying: str, index: int) -> str:
    for kind, indices in SPECIAL_DAYS[underlying].items():
        if index in indices:
            return kind
    return "regime_shift" if index == REGIME_SHIFT_DAY[underlying] else "ordinary"


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _band_of(dte: np.ndarray) -> np.ndarray:
    names = np.full(dte.shape, "global", dtype=object)
    for name, (lo, hi) in BANDS.items():
        names[(dte >= lo) & (dte <= hi)] = name
    return names


def _liquid_probability(kind: str, abs_delta: np.ndarray, dte: np.ndarray) -> np.ndarray:
    """How likely each option is to pass the default filters on this kind of day."""
    core = (abs_delta >= 0.1) & (abs_delta <= 0.9)
    if kind == "thin":
        return np.full(abs_delta.shape, 0.22)
    if kind == "low_vega":  # only short-dated and far-OTM quotes trade: many options, little vega
        return np.where((dte <= 7) | (abs_delta <= 0.1), 0.97, 0.0)
    return np.where(core, 0.95, 0.55)


def make_chain(underlying: str, index: int, day: date) -> tuple[pa.Table, dict[str, Any]]:
    """One day's chain plus its manifest entry; depends only on (underlying, index, day)."""
    rng = np.random.default_rng([SEED, list(UNDERLYINGS).index(underlying), index])
    kind = day_kind(underlying, index)
    noise_kind = "noisy" if kind == "noisy" else "ordinary"
    shifted = index >= REGIME_SHIFT_DAY[underlying]
    regime = {k: v + (REGIME_JUMP if shifted else 0.0) for k, v in BASE_MULTIPLIERS.items()}
    true = {k: round(v + rng.normal(0.0, DAY_NOISE[noise_kind]), 6) for k, v in regime.items()}

    params = UNDERLYINGS[underlying]
    spot = round(params["spot"] * math.exp(0.04 * math.sin(index / 7.0) + rng.normal(0.0, 0.004)), 2)
    base_atm = params["atm_iv"] * (1.0 + 0.12 * math.sin(index / 11.0))

    # Daily expiries for the next week plus weekly (Friday) expiries out to about two months.
    later = [day + timedelta(days=d) for d in range(1, 64)]
    expiries = sorted({e for e in later[:7] if e.weekday() < 5} | {e for e in later if e.weekday() == 4})
    call_deltas = np.linspace(0.03, 0.97, 18)
    rows: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for expiry in expiries:
        days_left = (expiry - day).days
        years = days_left / 365.0
        vol = base_atm * (1.0 + 0.04 * math.log(days_left / 30.0))
        d1 = np.array([_N.inv_cdf(d) for d in call_deltas])
        strikes = np.unique(np.round(spot * np.exp(-d1 * vol * math.sqrt(years) + 0.5 * vol * vol * years)))
        for option_type in ("call", "put"):
            rows["strike"].extend(strikes.tolist())
            rows["option_type"].extend([option_type] * len(strikes))
            rows["expiry"].extend([expiry] * len(strikes))
            rows["dte"].extend([days_left] * len(strikes))

    strike = np.array(rows["strike"])
    dte = np.array(rows["dte"])
    is_call = np.array(rows["option_type"]) == "call"
    t = dte / 365.0
    atm = base_atm * (1.0 + 0.04 * np.log(dte / 30.0))
    z = np.log(strike / spot) / (atm * np.sqrt(t))
    synthetic = np.maximum(atm * (1.0 - 0.10 * z + 0.03 * z * z), 0.5 * atm)

    multiplier = np.array([true[b] for b in _band_of(dte)])
    rough_iv = synthetic * multiplier
    rough_d1 = (np.log(spot / strike) + 0.5 * rough_iv**2 * t) / (rough_iv * np.sqrt(t))
    rough_abs_delta = np.where(is_call, _norm_cdf(rough_d1), 1.0 - _norm_cdf(rough_d1))
    wing = 1.0 + WING_PREMIUM * np.clip((0.25 - rough_abs_delta) / 0.25, 0.0, 1.0)
    market = rough_iv * wing * (1.0 + rng.normal(0.0, OPTION_NOISE[noise_kind], strike.shape))

    d1 = (np.log(spot / strike) + 0.5 * market**2 * t) / (market * np.sqrt(t))
    d2 = d1 - market * np.sqrt(t)
    delta = np.where(is_call, _norm_cdf(d1), _norm_cdf(d1) - 1.0)
    vega = spot * _norm_pdf(d1) * np.sqrt(t)  # $ per 1 vol point per 100-share contract
    price = np.where(
        is_call,
        spot * _norm_cdf(d1) - strike * _norm_cdf(d2),
        strike * _norm_cdf(-d2) - spot * _norm_cdf(-d1),
    )
    mid = np.maximum(price, 0.05)

    liquid = rng.random(strike.shape) < _liquid_probability(kind, np.abs(delta), dte)
    rel_spread = np.where(liquid, rng.uniform(0.02, 0.12, strike.shape), rng.uniform(0.6, 1.6, strike.shape))
    volume = np.where(liquid, rng.integers(1, 5000, strike.shape), 0)
    open_interest = rng.integers(10, 40000, strike.shape)
    # Illiquid quotes fail in one of three ways: no volume, no open interest, or a wide spread.
    failure = rng.integers(0, 3, strike.shape)
    volume = np.where(~liquid & (failure != 0), rng.integers(1, 50, strike.shape), volume)
    open_interest = np.where(~liquid & (failure == 1), rng.integers(0, MIN_OPEN_INTEREST, strike.shape), open_interest)
    rel_spread = np.where(~liquid & (failure == 1), rng.uniform(0.02, 0.12, strike.shape), rel_spread)
    half = mid * rel_spread / 2.0

    rows.update(
        date=[day] * len(strike),
        underlying=[underlying] * len(strike),
        spot=[spot] * len(strike),
        bid=np.round(mid - half, 4).tolist(),
        ask=np.round(mid + half, 4).tolist(),
        volume=volume.astype(np.int64).tolist(),
        open_interest=open_interest.astype(np.int64).tolist(),
        market_iv=np.round(market, 6).tolist(),
        synthetic_iv=np.round(synthetic, 6).tolist(),
        delta=np.round(delta, 4).tolist(),
        vega=np.round(vega, 4).tolist(),
    )
    table = pa.table(rows, schema=SCHEMA)
    entry = {
        "kind": kind,
        "regime": "post_shift" if shifted else "pre_shift",
        "true_multiplier_global": true["global"],
        "true_multiplier_bands": {name: true[name] for name in BANDS},
        "options": len(strike),
        "expected_liquid_n": int(liquid.sum()),
        "expected_liquid_vega_sum": round(float(np.round(vega, 4)[liquid].sum()), 2),
    }
    return table, entry


def write_table(table: pa.Table, path: Path) -> None:
    """Fixed writer settings, no pandas metadata, no timestamps: same table, same bytes."""
    pq.write_table(
        table.replace_schema_metadata(None),
        path,
        compression="zstd",
        compression_level=9,
        use_dictionary=True,
        write_statistics=False,
        version="2.6",
        data_page_version="1.0",
    )


def generate(out_dir: Path = DEFAULT_OUT, limit_days: int | None = None) -> dict[str, Any]:
    """Write every chain (or only the first ``limit_days`` dates) and MANIFEST.json under ``out_dir``."""
    days = business_days()[: limit_days or N_DAYS]
    manifest: dict[str, Any] = {
        "description": (
            "Synthetic harvested option chains. true_multiplier_* are the market/model IV ratios "
            "hidden in each chain: the band value applies to options whose DTE lies in the band, "
            "true_multiplier_global to all other options, so the vega-weighted global "
            "recommendation is a blend near, not exactly at, true_multiplier_global. Far-OTM "
            f"options carry up to {WING_PREMIUM:.0%} extra IV (a wing premium). expected_liquid_* "
            "count the options that pass the agent's default liquidity filters."
        ),
        "generator": "data/generate_sample_data.py",
        "bands": {name: {"min_dte": lo, "max_dte": hi} for name, (lo, hi) in BANDS.items()},
        "regime_shift": {u: days[i].isoformat() for u, i in REGIME_SHIFT_DAY.items() if i < len(days)},
        "regime_jump": REGIME_JUMP,
        "underlyings": {},
    }
    for underlying in UNDERLYINGS:
        folder = out_dir / underlying
        folder.mkdir(parents=True, exist_ok=True)
        entries = {}
        for index, day in enumerate(days):
            table, entries[day.isoformat()] = make_chain(underlying, index, day)
            write_table(table, folder / f"{day.isoformat()}.parquet")
        manifest["underlyings"][underlying] = entries
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (out_dir / "MANIFEST.json").write_text(text, encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: data/harvest)")
    args = parser.parse_args(argv)
    manifest = generate(args.out)
    count = sum(len(v) for v in manifest["underlyings"].values())
    print(f"Wrote {count} chains and MANIFEST.json to {args.out}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
