"""The store keeps each report once (report id + reporter), on SQLite and PostgreSQL,
whatever the interleaving; its SQLite file is private; retention deletes what is old."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailctl.reports import db
from mailctl.reports.ingest import read_file
from mailctl.reports.model import DmarcReport
from mailctl.reports.store import ReportStore
from tests.reports import gen

ROOT = Path(__file__).resolve().parents[2]
NOW = int(time.time())


def _reports(n: int, seed: int = 1, begin: int | None = None) -> list[tuple[str, bytes]]:
    t0 = begin if begin is not None else NOW - 10 * 86400
    out = []
    for name, data, _, _ in gen.corpus(n, seed=seed, big_every=0, max_rows=8):
        out.append((name, data))
    del t0
    return out


def _nrecords(name: str, data: bytes) -> int:
    r = read_file(name, data)[0].reports[0]
    assert isinstance(r, DmarcReport)
    return len(r.records)


def _store_all(store: ReportStore, files: list[tuple[str, bytes]]) -> tuple[int, int]:
    stored = dup = 0
    for name, data in files:
        for o in read_file(name, data):
            got = store.add(o.reports, name)
            stored += got.stored
            dup += got.duplicates
    return stored, dup


def test_sqlite_file_private_and_schema_at_head(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sub" / "reports.db"
    store = ReportStore(f"sqlite:///{path}")
    _store_all(store, _reports(3))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for extra in path.parent.glob("reports.db-*"):
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra
    assert db.current_revision(store.engine) == db.HEAD
    store.close()


def test_same_report_twice_and_repackaged_is_stored_once(tmp_path: Path) -> None:
    store = ReportStore(f"sqlite:///{tmp_path}/r.db")
    files = _reports(10)
    assert _store_all(store, files) == (10, 0)
    assert _store_all(store, files) == (0, 10)
    # the same XML, shipped the other way (gzip instead of zip, or inside a mail)
    name, data = files[0]
    doc = read_file(name, data)[0].reports[0]
    assert isinstance(doc, DmarcReport)
    xml = gen.aggregate_xml("google", doc.domain, [gen.Row(r.source_ip, r.count)
                                                   for r in doc.records],
                            report_id=doc.report_id, begin=doc.begin, end=doc.end)
    assert _store_all(store, [("again.xml.gz", gen.gz(xml))]) == (0, 1)
    counts = store.counts()
    assert counts["dmarc"] == 10
    assert counts["records"] == sum(_nrecords(n, d) for n, d in files)
    store.close()


def test_retention_skips_and_prunes(tmp_path: Path) -> None:
    store = ReportStore(f"sqlite:///{tmp_path}/r.db")
    old = gen.aggregate_xml("yahoo", "acme.test", [gen.Row("192.0.2.1", 5)], report_id="old",
                            begin=NOW - 100 * 86400, end=NOW - 99 * 86400)
    new = gen.aggregate_xml("yahoo", "acme.test", [gen.Row("192.0.2.1", 5)], report_id="new",
                            begin=NOW - 2 * 86400, end=NOW - 86400)
    reports = [read_file("o.xml", old)[0].reports[0], read_file("n.xml", new)[0].reports[0]]
    got = store.add(reports, "t", retention_days=30)
    assert (got.stored, got.expired) == (1, 1)
    store.add(reports, "t")  # without retention: both
    assert store.counts()["dmarc"] == 2
    assert store.prune(30)["reports"] == 1
    assert store.counts() == {"dmarc": 1, "records": 1, "rejections": 0}
    store.close()


def test_postgres_once_and_prune(postgres_url: str) -> None:
    store = ReportStore(postgres_url)
    files = _reports(12)
    assert _store_all(store, files) == (12, 0)
    assert _store_all(store, files) == (0, 12)
    assert store.counts()["dmarc"] == 12
    assert store.prune(1, now=NOW + 10_000 * 86400)["reports"] == 12
    assert store.counts()["records"] == 0
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_importers_store_each_report_once(backend: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path}/r.db" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    ReportStore(url).close()  # migrated once, so the racers race on data, not schema
    files = _reports(60, seed=7)
    d = tmp_path / "in"
    d.mkdir()
    for name, data in files:
        (d / name).write_bytes(data)
    code = ("import sys\nfrom pathlib import Path\n"
            "from mailctl.reports.store import ReportStore\n"
            "from mailctl.reports.importer import import_files\n"
            "from mailctl.reports.unpack import Limits\n"
            "s = ReportStore(sys.argv[1])\n"
            "files = sorted(Path(sys.argv[2]).iterdir())\n"
            "if sys.argv[3] == 'r': files.reverse()\n"
            "rows = import_files(s, files, Limits(), None)\n"
            "print(sum(r['stored'] for r in rows), sum(r['duplicates'] for r in rows))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, url, str(d), order], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for order in ("f", "r", "f")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-4000:] for o in outs]
    stored = sum(int(o[0].split()[0]) for o in outs)
    dups = sum(int(o[0].split()[1]) for o in outs)
    assert (stored, dups) == (60, 120)
    store = ReportStore(url)
    keys = store.report_keys()
    assert len(keys) == len(set(keys)) == 60
    assert store.counts()["records"] == sum(_nrecords(n, b) for n, b in files)
    store.close()


def test_store_url_from_config_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "mailctl.yaml"
    assert db.resolve_url(None, cfg) == f"sqlite:///{tmp_path.resolve()}/.mailctl/reports.db"
    assert db.resolve_url("sqlite:///x/r.db", cfg) == f"sqlite:///{tmp_path.resolve()}/x/r.db"
    monkeypatch.setenv("MAILCTL_REPORTS_DB", "postgresql+psycopg://h/db")
    assert db.resolve_url(None, cfg) == "postgresql+psycopg://h/db"
    os.environ.pop("MAILCTL_REPORTS_DB")
