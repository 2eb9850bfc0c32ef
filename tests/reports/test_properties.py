"""Property tests: any input ends as reports or a clean rejection, never an exception,
in bounded time (hypothesis' deadline) and without unbounded growth."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailctl.reports.dmarc import parse_dmarc
from mailctl.reports.ingest import Outcome, read_file, read_message
from mailctl.reports.model import Rejected
from mailctl.reports.tlsrpt import parse_tlsrpt
from tests.reports import gen

SETTINGS = settings(max_examples=150, deadline=2000,
                    suppress_health_check=[HealthCheck.too_slow])
VALID = gen.aggregate_xml("microsoft", "acme.test",
                          gen.sample_rows("acme.test", random.Random(2), 6),
                          report_id="p1", begin=100, end=200)
TLS = gen.tls_json("google", "acme.test", "mx.acme.test", report_id="t", begin=100,
                   end=200, ok=3, failures=[("starttls-not-supported", 2)])
MAIL = gen.report_mail("google", "acme.test", "d@acme.test", "google.com!acme.test!1!2.zip",
                       "application/zip", gen.zipped("r.xml", VALID), report_id="p1", when=5)


def _outcome_ok(outs: Sequence[Outcome]) -> None:
    for o in outs:
        assert o.status in ("report", "rejected", "not_report")
        for r in o.rejections:
            assert isinstance(r, Rejected) and r.code and r.reason


@SETTINGS
@given(st.binary(max_size=4096))
def test_any_bytes_as_a_file(data: bytes) -> None:
    _outcome_ok(read_file("x", data))


@SETTINGS
@given(st.binary(max_size=4096))
def test_any_bytes_as_a_mail(data: bytes) -> None:
    _outcome_ok([read_message(data)])


def _mutate(base: bytes, data: st.DataObject) -> bytes:
    b = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "drop"]))
        i = data.draw(st.integers(0, max(0, len(b) - 1)))
        if op == "flip" and b:
            b[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del b[i:]
        elif op == "insert":
            b[i:i] = data.draw(st.sampled_from([b"<", b"&", b"]]>", b"<!DOCTYPE x>",
                                                b"\x00", b"\xff\xfe", b'"', b"<record>"]))
        elif op == "drop" and b:
            del b[i:i + data.draw(st.integers(1, 64))]
    return bytes(b)


@SETTINGS
@given(st.data())
def test_mutated_aggregate_report(data: st.DataObject) -> None:
    doc = _mutate(VALID, data)
    try:
        r = parse_dmarc(doc)
    except Rejected as exc:
        assert exc.code and exc.reason
        return
    assert all(x.count >= 0 for x in r.records) and r.report_id


@SETTINGS
@given(st.data())
def test_mutated_compressed_report(data: st.DataObject) -> None:
    packed = data.draw(st.sampled_from([gen.gz(VALID), gen.zipped("r.xml", VALID)]))
    _outcome_ok(read_file("r.gz", _mutate(packed, data)))


@SETTINGS
@given(st.data())
def test_mutated_tls_report(data: st.DataObject) -> None:
    try:
        r = parse_tlsrpt(_mutate(TLS, data))
    except Rejected as exc:
        assert exc.code and exc.reason
        return
    assert all(p.successful >= 0 and p.failed >= 0 for p in r.policies)


@SETTINGS
@given(st.data())
def test_mutated_mail(data: st.DataObject) -> None:
    _outcome_ok([read_message(_mutate(MAIL, data))])


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.sampled_from([
                        "organization-name", "report-id", "date-range", "policies",
                        "policy", "summary", "failure-details", "policy-type",
                        "policy-domain", "start-datetime", "end-datetime", "result-type",
                        "failed-session-count", "mx-host"]), kids, max_size=6),
                    max_leaves=30))
def test_arbitrary_json_shapes(doc: object) -> None:
    import json

    try:
        parse_tlsrpt(json.dumps(doc).encode())
    except Rejected as exc:
        assert exc.code
