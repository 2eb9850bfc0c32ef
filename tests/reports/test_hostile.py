"""Hostile and broken inputs: each rejected with a reason, in bounded time and memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from mailctl.reports.ingest import read_file, read_message
from tests.reports import gen

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
XML = gen.aggregate_xml("google", "acme.test", [gen.Row("192.0.2.1", 1)], report_id="x",
                        begin=1, end=2)


def _mail(name: str, ctype: str, data: bytes) -> bytes:
    return gen.report_mail("microsoft", "acme.test", "d@acme.test", name, ctype, data,
                           report_id="hostile", when=10)


CASES = [
    pytest.param("lol.xml", gen.BILLION_LAUGHS, "xml_attack", "declares a DTD", id="billion"),
    pytest.param("xxe.xml", gen.XXE, "xml_attack", "declares a DTD", id="xxe"),
    pytest.param("dtd.xml", gen.EXTERNAL_DTD, "xml_attack", "declares a DTD", id="external-dtd"),
    pytest.param("x.xml.gz", gen.gz(gen.BILLION_LAUGHS), "xml_attack", "DTD", id="billion-gz"),
    pytest.param("x.zip", gen.zip_bomb(100), "bomb", "expands more than 200x", id="zip-bomb"),
    pytest.param("x.xml.gz", gen.gzip_bomb(100), "bomb", "expands more than", id="gzip-bomb"),
    pytest.param("x.zip", gen.nested_zip(XML), "nested", "an archive inside an archive",
                 id="nested-zip"),
    pytest.param("x.xml.gz", gen.gz(XML)[:-30], "truncated", "truncated", id="truncated-gz"),
    pytest.param("x.xml", XML[:-40], "malformed", "not well-formed", id="truncated-xml"),
    pytest.param("x.xml", XML.replace(b"UTF-8", b"Shift_JIS").replace(b"</org_name>",
                                                                      b"\xff\xfd</org_name>"),
                 "encoding", "not valid shift_jis", id="bad-shift-jis"),
    pytest.param("x.xml", XML.replace(b"UTF-8", b"x-nonsense-9"), "encoding",
                 "unknown declared encoding", id="unknown-encoding"),
    pytest.param("x.xml", "<feedback>é</feedback>".encode("utf-16-le"), "schema", "",
                 id="utf16-no-bom"),
    pytest.param("x.json", b'{"a": ' * 100_000, "malformed", "", id="json-depth"),
    pytest.param("x.json", b'[1, 2]', "not_tlsrpt", "", id="json-not-object"),
    pytest.param("x.zip", b"PK\x03\x04garbage", "corrupt", "", id="corrupt-zip"),
    pytest.param("x.bin", b"\x00\x01\x02random", "format", "neither XML nor JSON", id="binary"),
    pytest.param("x.xml", b"<html><body>hi</body></html>", "not_dmarc", "<html>", id="html"),
    pytest.param("x.xml", b"", "empty", "", id="empty"),
]


@pytest.mark.parametrize(("name", "data", "code", "words"), CASES)
def test_file_rejected_with_reason(name: str, data: bytes, code: str, words: str) -> None:
    t = time.monotonic()
    outs = read_file(name, data)
    assert time.monotonic() - t < 30
    assert len(outs) == 1 and not outs[0].reports
    rej = outs[0].rejections[0]
    assert rej.code == code, rej.reason
    assert words in rej.reason
    assert "root:" not in rej.reason  # XXE: /etc/passwd never read


@pytest.mark.parametrize(("name", "data", "code", "words"), CASES[:9])
def test_mail_with_hostile_attachment_is_rejected(name: str, data: bytes, code: str,
                                                 words: str) -> None:
    out = read_message(_mail(name, "application/octet-stream", data))
    assert out.status == "rejected"
    assert out.rejections[0].code == code


def test_huge_mail_rejected_before_parsing() -> None:
    from mailctl.reports.unpack import Limits

    big = _mail("big.xml.gz", "application/gzip", b"\x1f\x8b" + b"\0" * (3 << 20))
    out = read_message(big, Limits(max_message=1 << 20))
    assert out.rejections[0].code == "too_large" and "MiB" in out.reason()


def test_bombs_stay_within_memory() -> None:
    """A 1 GiB zip bomb and a 1 GiB gzip bomb, in a fresh process: peak RSS stays small."""
    code = (
        "import resource, sys\n"
        "from tests.reports import gen\n"
        "from mailctl.reports.ingest import read_file\n"
        "zb = gen.zip_bomb(1024); gb = gen.gzip_bomb(1024)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "codes = [read_file('x.zip', zb)[0].rejections[0].code,\n"
        "         read_file('x.gz', gb)[0].rejections[0].code]\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(codes, before, after)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    codes, before, after = proc.stdout.rsplit(" ", 2)[0], *map(int, proc.stdout.split()[-2:])
    assert set(json.loads(codes.replace("'", '"'))) <= {"bomb", "too_large"}
    assert after - before < 80 * 1024  # KiB: the limits hold, not the bomb's 1 GiB
