"""Issue 12: every path at 1k / 100k / 1M runs beside a fair baseline measured in the same run.

    python benchmarks/bench_all.py --runs 1000000 [--workdir /tmp/cp-million]   # the table in docs/operations/performance.md

Baselines (same machine, same run, same files where files are involved):

* **SQLite** — one table ``runs(underlying, ts, seq, id, payload)`` with an index on
  ``(underlying, ts, seq)``, ``journal_mode=WAL``, ``synchronous=FULL``; loads return the same
  pydantic models (``CalibrationRun.model_validate_json`` of each payload); record is one INSERT
  in its own transaction.
* **sorted-name scan** — what a careful script does without an index: ``sorted(os.listdir())``,
  keep the underlying's names, open the newest 50.
* **bare durable write** — write a temp file, fsync it, ``link`` it into place, fsync the folder.
* **folder listing** — ``os.listdir`` of the history folder: the least any way of noticing a
  file copied in by hand can cost.

Run folders hold 10 underlyings, one run every 90 s of each; a few bad files (half-written,
foreign name, not a JSON object) are mixed in, so every figure is "with bad input". Folders are
kept under ``--workdir`` and reused (making 1M files takes minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNDERLYINGS = ("SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOG")
BASE = datetime(2020, 1, 1, tzinfo=UTC)
BAD_FILES = {
    "20200101T000000.000001Z_SPY_live.json": b'{"timestamp": "2020-01-01T00:00:00.000001Z", "underl',  # half-written
    "SPY (1).json": b"{}",  # foreign: a copy made by a file manager
    "20200101T000000.000002Z_SPY_live.json": b"[1, 2, 3]",  # not a record
    "notes.txt": b"hello",
}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def median_ms(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return ms(statistics.median(samples))


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return round(int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def peak_mb() -> float:
    """This process's own peak resident memory (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``: Linux carries the
    parent's peak into a child across ``exec``, so a process started by this benchmark (which holds a million runs'
    worth of work) reported the benchmark's peak, 388 MB, as its own."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def host_result(g: float = 1.05) -> dict:
    sys.path.insert(0, str(HERE))
    import bench_history

    return bench_history.host_result(g)


def moment_of(i: int) -> datetime:
    return BASE + timedelta(seconds=90 * (i // len(UNDERLYINGS)), microseconds=(i // len(UNDERLYINGS)) % 997)


# -- folders ------------------------------------------------------------------------------------------


def make_folder(folder: Path, n: int) -> None:
    """``n`` valid runs (the bytes of a recorded run, its timestamp changed) and the bad files."""
    from calibration_policy import record_calibration_result

    if (folder / ".complete").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    templates = {}
    with tempfile.TemporaryDirectory() as scratch:
        for u in UNDERLYINGS:
            run = record_calibration_result(host_result(), u, "live", history_dir=scratch, timestamp=BASE)
            data = (Path(scratch) / f"{run.run_id}.json").read_bytes()
            templates[u] = data.split(b'"timestamp": "2020-01-01T00:00:00Z"')
    started = time.perf_counter()
    for i in range(n):
        u, moment = UNDERLYINGS[i % len(UNDERLYINGS)], moment_of(i)
        head, tail = templates[u]
        with open(folder / f"{moment:%Y%m%dT%H%M%S.%fZ}_{u}_live.json", "wb") as handle:
            handle.write(head + f'"timestamp": "{moment:%Y-%m-%dT%H:%M:%S.%fZ}"'.encode() + tail)
        if i and i % 200_000 == 0:
            print(f"   {i:,} files ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    for name, data in BAD_FILES.items():
        (folder / name).write_bytes(data)
    (folder.parent / f"{folder.name}.complete").touch()
    os.rename(folder.parent / f"{folder.name}.complete", folder / ".complete")


def make_sqlite(path: Path, folder: Path, n: int) -> None:
    """The same runs in SQLite (built fast, then measured with WAL + synchronous=FULL)."""
    if path.exists() and path.with_suffix(".complete").exists():
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(
        "CREATE TABLE runs (underlying TEXT NOT NULL, ts TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL)"
    )
    templates = {}
    for u in UNDERLYINGS:
        name = f"{moment_of(UNDERLYINGS.index(u)):%Y%m%dT%H%M%S.%fZ}_{u}_live.json"
        templates[u] = (
            (folder / name).read_text().split(f'"timestamp": "{moment_of(UNDERLYINGS.index(u)):%Y-%m-%dT%H:%M:%S.%fZ}"')
        )

    def rows():
        for i in range(n):
            u, moment = UNDERLYINGS[i % len(UNDERLYINGS)], moment_of(i)
            stamp = f"{moment:%Y%m%dT%H%M%S.%fZ}"
            head, tail = templates[u]
            yield u, stamp, 0, f"{stamp}_{u}_live", head + f'"timestamp": "{moment:%Y-%m-%dT%H:%M:%S.%fZ}"' + tail

    db.execute("BEGIN")
    db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?)", rows())
    db.execute("COMMIT")
    db.execute("CREATE INDEX runs_by_underlying ON runs (underlying, ts, seq)")
    db.close()
    path.with_suffix(".complete").touch()


# -- the measurements ------------------------------------------------------------------------------------


class SqliteStore:
    """The fair baseline: a real store in SQLite, WAL + synchronous=FULL, the same models out."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")

    def latest(self, underlying: str, limit: int = 50, before: tuple[str, int] | None = None):
        from calibration_policy.models import CalibrationRun

        if before is None:
            rows = self.db.execute(
                "SELECT id, payload FROM runs WHERE underlying = ? ORDER BY ts DESC, seq DESC LIMIT ?",
                (underlying, limit),
            ).fetchall()
        else:
            rows = self.db.execute(
                "SELECT id, payload FROM runs WHERE underlying = ? AND (ts, seq) < (?, ?) "
                "ORDER BY ts DESC, seq DESC LIMIT ?",
                (underlying, *before, limit),
            ).fetchall()
        runs = []
        for run_id, payload in reversed(rows):
            data = json.loads(payload)
            data["run_id"] = run_id
            runs.append(CalibrationRun.model_validate(data))
        return runs

    def oldest(self, underlying: str, limit: int):
        from calibration_policy.models import CalibrationRun

        rows = self.db.execute(
            "SELECT id, payload FROM runs WHERE underlying = ? ORDER BY ts, seq LIMIT ?", (underlying, limit)
        )
        return [CalibrationRun.model_validate({**json.loads(p), "run_id": i}) for i, p in rows]

    def record(self, run) -> None:
        from calibration_policy.durable import dumps_model
        from calibration_policy.naming import utc_stamp

        stamp = utc_stamp(run.timestamp)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "INSERT INTO runs VALUES (?, ?, 0, ?, ?)",
            (
                run.underlying,
                stamp,
                f"{stamp}_{run.underlying}_{run.source}",
                dumps_model(run, exclude={"run_id"}).decode(),
            ),
        )
        self.db.execute("COMMIT")


def sorted_name_scan(folder: Path, underlying: str, limit: int = 50):
    """No index: list, sort, keep the underlying's names, read the newest ``limit``."""
    from calibration_policy.models import CalibrationRun

    mark = f"_{underlying}_"
    names = [n for n in sorted(os.listdir(folder)) if mark in n and n.endswith(".json")]
    runs = []
    for name in names[-limit:]:
        try:
            with open(folder / name, "rb") as handle:
                data = json.loads(handle.read())
            if isinstance(data, dict):  # the folder's "not a JSON object" file is skipped, as the store skips it
                runs.append(CalibrationRun.model_validate({**data, "run_id": name[:-5]}))
        except ValueError:
            continue
    return runs


def bare_durable_write(folder: Path, payload: bytes, i: int) -> None:
    temp = folder / f".bare-{i}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.link(temp, folder / f"bare-{i}.json")
    os.unlink(temp)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


RSS_SNIPPET = """
import os, sys, time
from pathlib import Path
from datetime import datetime, timedelta, timezone
sys.path.insert(0, sys.argv[2])
import bench_million as b
from calibration_policy.history import HistoryStore, build_run
folder = Path(sys.argv[1])
store = HistoryStore(folder)
for u in b.UNDERLYINGS:
    store.latest(u, 50)
store.oldest("SPY", 10)
store.record(build_run(b.host_result(), "SPY", "live", timestamp=datetime(2300 - 40, 1, 1, tzinfo=timezone.utc)))
store.latest("SPY", 50)
(folder / "20100101T000000.999999Z_SPY_live.json").write_bytes((folder / ".complete").read_bytes())
store.latest("SPY", 50)
os.unlink(folder / "20100101T000000.999999Z_SPY_live.json")
store.latest("SPY", 50)
print(b.rss_mb())
"""


SERVER_PEAK_SNIPPET = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import bench_million as b
from fastapi import FastAPI
from fastapi.testclient import TestClient
from calibration_policy.history import HistoryStore, cursor_of
from calibration_policy.target import JsonFileTarget
from calibration_policy_ui import create_router
imports = b.rss_mb()
folder = Path(sys.argv[1])
app = FastAPI()
app.include_router(
    create_router(history_dir=folder, archive_dir=folder.parent / "peak_archive",
                  suggestions_dir=folder.parent / "peak_suggestions", target_for=lambda u: JsonFileTarget(sys.argv[3])),
    prefix="/calibration",
)
client = TestClient(app)
oldest = HistoryStore(folder).oldest("SPY", 11)[-1]
for u in b.UNDERLYINGS:  # every page a user opens: each underlying's newest, the oldest, the API, history, status
    client.get("/calibration/", params={"underlying": u}).raise_for_status()
    client.get("/calibration/api/status", params={"underlying": u}).raise_for_status()
client.get("/calibration/", params={"underlying": "SPY", "before": cursor_of(oldest)}).raise_for_status()
client.get("/calibration/api/runs", params={"underlying": "SPY", "limit": 100}).raise_for_status()
print(imports, b.peak_mb())
"""


def bench_size(workdir: Path, n: int, repeat: int) -> list[dict]:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from calibration_policy.history import HistoryStore, build_run
    from calibration_policy.target import JsonFileTarget
    from calibration_policy_ui import create_router

    folder = workdir / f"runs_{n}"
    print(f"\n== {n:,} runs: folders", file=sys.stderr, flush=True)
    make_folder(folder, n)
    make_sqlite(workdir / f"runs_{n}.sqlite3", folder, n)
    sqlite = SqliteStore(workdir / f"runs_{n}.sqlite3")
    rows: list[dict] = []

    def row(
        path: str, ours: float, baseline: str, theirs: float | None, goal: str = "", rss: float | None = None
    ) -> None:
        rows.append(
            {
                "path": path,
                "runs": n,
                "ours_ms": ours,
                "baseline": baseline,
                "baseline_ms": theirs,
                "ratio": round(ours / theirs, 2) if theirs else None,
                "goal": goal,
                "rss_mb": rss,
            }
        )

    # index build from scratch, in a fresh process (so the figure includes no warm caches of ours)
    shutil.rmtree(folder / ".index", ignore_errors=True)
    time.sleep(0.3)
    listing = median_ms(lambda: os.listdir(folder), 3)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nimport numpy\n"
            "from calibration_policy.history import HistoryStore\n"
            "s = HistoryStore(Path(sys.argv[1])); t = time.perf_counter(); s.latest('SPY', 50)\n"
            "print(time.perf_counter() - t)",
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    build = ms(float(out.stdout.strip().splitlines()[-1]))
    row("index build from scratch (first load)", build, "folder listing", listing, "≤ 5 s at 1M, progress bar over 1 s")
    time.sleep(0.3)

    store = HistoryStore(folder)
    store.latest("SPY", 50)
    time.sleep(0.3)
    store.latest("SPY", 50)  # a quiet, trusted listing
    warm = median_ms(lambda: store.latest("SPY", 50), repeat)
    row(
        "warm latest 50",
        warm,
        "SQLite, same models",
        median_ms(lambda: sqlite.latest("SPY", 50), repeat),
        "≤ SQLite; aim 2 ms",
    )
    row("warm latest 50", warm, "sorted-name scan", median_ms(lambda: sorted_name_scan(folder, "SPY"), 3))

    counter = iter(range(10**9))

    def next_run():
        i = next(counter)
        return build_run(
            host_result(1.0 + (i % 7) / 100),
            "SPY",
            "live",
            timestamp=datetime(2200, 1, 1, tzinfo=UTC) + timedelta(minutes=i),
        )

    def ours_record_then_latest():
        store.record(next_run())
        store.latest("SPY", 50)

    def sqlite_record_then_latest():
        sqlite.record(next_run())
        sqlite.latest("SPY", 50)

    row(
        "record one run, then latest 50",
        median_ms(ours_record_then_latest, repeat),
        "SQLite WAL+FULL, same models",
        median_ms(sqlite_record_then_latest, repeat),
        "≤ 10 ms and ≤ 2× SQLite at 1M",
    )
    runs = [next_run() for _ in range(repeat)]
    ours_record = median_ms(lambda: store.record(runs.pop()), repeat)
    from calibration_policy.durable import dumps_model

    payload = dumps_model(next_run(), exclude={"run_id"})
    bare = median_ms(lambda: bare_durable_write(folder, payload, next(counter)), repeat)  # the same folder
    for extra in folder.glob("bare-*.json"):
        extra.unlink()
    row("record one run", ours_record, "bare write+fsync+link+dir fsync", bare, "≤ 1.5× bare durable write")
    row("record one run", ours_record, "SQLite WAL+FULL INSERT", median_ms(lambda: sqlite.record(next_run()), repeat))

    # a file copied in by hand, seen by the next load (the copy itself is not timed)
    source = folder / f"{store.latest('SPY', 1)[0].run_id}.json"  # a valid run (the folder also holds bad ones)
    seen = []
    for i in range(max(3, repeat // 10)):
        time.sleep(0.3)
        store.latest("SPY", 50)  # quiet and trusted before the copy
        copied = folder / f"20100101T0000{i:02d}.000000Z_SPY_live.json"
        shutil.copyfile(source, copied)
        start = time.perf_counter()
        loaded = store.oldest("SPY", 1)
        seen.append(time.perf_counter() - start)
        assert loaded[0].run_id == copied.stem or i > 0
    row(
        "hand-copied file seen by the next load",
        ms(statistics.median(seen)),
        "folder listing",
        median_ms(lambda: os.listdir(folder), 3),
        "≤ 1.5× listing the folder",
    )

    # after a hand-copied file, the next 100 record/load cycles against 100 cycles with the folder trusted, alternating:
    # the index regains trust after at most one listing, so the cycles after a copy cost about what trusted ones do
    count = min(100, 10 * repeat)  # 100 at the table's sizes; fewer in the test suite's tiny run

    def cycles() -> float:
        start = time.perf_counter()
        for _ in range(count):
            ours_record_then_latest()
        return time.perf_counter() - start

    after_copy, trusted = [], []
    for i in range(3):
        time.sleep(0.3)
        store.latest("SPY", 50)  # quiet and trusted
        trusted.append(cycles())
        time.sleep(0.3)
        store.latest("SPY", 50)
        shutil.copyfile(source, folder / f"20100102T0000{i:02d}.000000Z_SPY_live.json")  # behind the index's back
        after_copy.append(cycles())
    row(
        f"{count} record/load cycles after a hand-copied file",
        ms(statistics.median(after_copy)),
        f"{count} cycles, folder trusted",
        ms(statistics.median(trusted)),
        "≤ 2× the trusted loop at 1M",
    )

    # panel pages: the newest and the oldest (keyset), through the real router
    config = workdir / "panel_config.json"
    config.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    app = FastAPI()
    app.include_router(
        create_router(
            history_dir=folder,
            archive_dir=workdir / f"panel_archive_{n}",
            suggestions_dir=workdir / f"panel_suggestions_{n}",
            target_for=lambda u: JsonFileTarget(config),
        ),
        prefix="/calibration",
    )
    client = TestClient(app)
    time.sleep(0.3)
    client.get("/calibration/?underlying=SPY").raise_for_status()
    pages = -(-store.count("SPY") // 10)
    newest = median_ms(lambda: client.get("/calibration/?underlying=SPY").raise_for_status(), max(5, repeat // 2))
    oldest = median_ms(
        lambda: client.get(f"/calibration/?underlying=SPY&page={pages}").raise_for_status(), max(5, repeat // 2)
    )
    second_oldest = store.oldest("SPY", 11)[-1]
    from calibration_policy.history import cursor_of

    before = median_ms(
        lambda: client.get(
            "/calibration/", params={"underlying": "SPY", "before": cursor_of(second_oldest)}
        ).raise_for_status(),
        max(5, repeat // 2),
    )
    sqlite_page = median_ms(lambda: sqlite.latest("SPY", 40), repeat)
    row("panel page, newest", newest, "SQLite latest 40, same models", sqlite_page, "≤ 50 ms at 1M")
    row(
        "panel page, oldest (keyset)",
        max(oldest, before),
        "SQLite latest 40, same models",
        sqlite_page,
        "≤ 50 ms at 1M",
    )
    row(
        "/api/runs oldest page (before=)",
        median_ms(
            lambda: client.get(
                "/calibration/api/runs", params={"underlying": "SPY", "limit": 10, "before": cursor_of(second_oldest)}
            ).raise_for_status(),
            repeat,
        ),
        "SQLite oldest 10, same models",
        median_ms(lambda: sqlite.oldest("SPY", 10), repeat),
    )
    store._index.close()

    out = subprocess.run(
        [sys.executable, "-c", RSS_SNIPPET, str(folder), str(HERE)], capture_output=True, text=True, check=True
    )
    rss = float(out.stdout.strip().splitlines()[-1])
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import bench_million as b\n"
            "import calibration_policy.history, calibration_policy.models, numpy\nprint(b.rss_mb())",
            str(HERE),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    row("resident memory after loads (fresh process)", 0.0, "after imports only", None, "≤ 64 MB at 1M", rss)
    rows[-1]["ours_ms"] = None
    rows[-1]["baseline_rss_mb"] = float(base.stdout.strip().splitlines()[-1])

    def index_current() -> bool:
        """Whether the run index holds the folder as it is now (a load would list nothing)."""
        db = sqlite3.connect(f"file:{folder / '.index' / 'runs.sqlite3'}?mode=ro", uri=True)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
        return bool(meta.get("trusted")) and meta.get("dir_mtime_ns") == os.stat(folder).st_mtime_ns

    def server_peak(state: str) -> None:
        time.sleep(0.3)  # what the server finds is the state, not a racy window
        lists = not index_current()
        if lists != bool(state):  # a row must measure the state it names
            raise RuntimeError(f"the server would {'' if lists else 'not '}list the folder, against its row{state}")
        server = subprocess.run(
            [sys.executable, "-c", SERVER_PEAK_SNIPPET, str(folder), str(HERE), str(workdir / "panel_config.json")],
            capture_output=True,
            text=True,
            check=True,
        )
        if lists and not index_current():
            raise RuntimeError(f"the server did not list the folder{state}")
        server_imports, peak = (float(x) for x in server.stdout.split()[-2:])
        row(
            f"the panel's server: peak memory (fresh process{state})", 0.0, "after imports only", None, "≤ 128 MB", peak
        )
        rows[-1]["ours_ms"] = None
        rows[-1]["baseline_rss_mb"] = server_imports

    time.sleep(0.3)
    store.latest("SPY", 50)  # the folder listed once more if it must be, so the server finds its index trusted
    server_peak("")  # no listing
    if n >= 100_000:  # the states that make the server list the folder first, at the sizes where a listing weighs
        foreign = folder / "notes.txt"
        foreign.write_text("a file that is not a run, copied in by hand")
        server_peak(", after a foreign file: one listing")
        foreign.unlink()
        aside = workdir / f"aside_{n}"
        aside.mkdir(exist_ok=True)
        gone = sorted(folder.glob("*_SPY_live.json"))[::97][:300]  # 300 runs deleted behind the index's back
        for path in gone:
            path.rename(aside / path.name)
        try:
            server_peak(", after 300 runs deleted: one listing")
        finally:
            for path in gone:
                (aside / path.name).rename(path)
            time.sleep(0.3)
            store.latest("SPY", 50)  # the folder as it was, listed once, trusted again
    # put the folder back as it was (the records above are removed, so the next run measures the same size)
    for extra in {*folder.glob("22*_SPY_live*.json"), *folder.glob("2010*_SPY_live.json")}:
        extra.unlink(missing_ok=True)
    sqlite.db.execute("DELETE FROM runs WHERE ts >= '2200'")
    sqlite.db.close()
    return rows


def table(rows: list[dict]) -> str:
    headers = ("path", "runs", "calibration-policy", "baseline", "baseline figure", "ours ÷ baseline", "goal")
    lines = []
    for r in rows:
        if r["rss_mb"] is not None:
            ours, theirs, ratio = (
                f"{r['rss_mb']:.0f} MB RSS",
                f"{r['baseline_rss_mb']:.0f} MB",
                f"+{r['rss_mb'] - r['baseline_rss_mb']:.0f} MB",
            )
        else:
            ours = f"{r['ours_ms']:,.2f} ms" if r["ours_ms"] < 1000 else f"{r['ours_ms'] / 1000:,.2f} s"
            theirs = (
                "–"
                if r["baseline_ms"] is None
                else (f"{r['baseline_ms']:,.2f} ms" if r["baseline_ms"] < 1000 else f"{r['baseline_ms'] / 1000:,.2f} s")
            )
            ratio = (
                "–"
                if r["ratio"] is None
                else (f"{r['ratio']:,.2f}×" if r["ratio"] >= 0.1 else f"1/{r['baseline_ms'] / r['ours_ms']:,.0f}")
            )
        lines.append(
            (
                r["path"],
                f"{r['runs']:,}",
                ours,
                r["baseline"],
                theirs,
                ratio,
                r["goal"] if r["runs"] >= 1_000_000 else "",
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    ordered = sorted(lines, key=lambda line: ([r["path"] for r in rows].index(line[0]), int(line[1].replace(",", ""))))
    return "\n".join(
        [fmt(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(fmt(line) for line in ordered)]
    )


def rerender(results: Path) -> str:
    """The table and note of a saved run (``results_million.json``), re-printed."""
    data = json.loads(results.read_text())
    return f"{table(data['rows'])}\n\n{data['note']}"


def run(sizes: list[int], workdir: Path, repeat: int, out: Path) -> str:
    import platform

    began = time.perf_counter()
    load_start = list(os.getloadavg())
    rows = []
    for n in sizes:
        rows += bench_size(workdir, n, repeat)
    load_end = list(os.getloadavg())
    text = table(rows)
    note = (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}; load average "
        f"{load_start[0]:.1f} at start, {load_end[0]:.1f} at end (the machine is shared: other jobs ran); "
        f"{time.perf_counter() - began:.0f} s in all; medians; page cache warm."
    )
    out.write_text(
        json.dumps(
            {
                "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "sizes": sizes,
                "rows": rows,
                "note": note,
                "table": text,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    return f"{text}\n\n{note}"
