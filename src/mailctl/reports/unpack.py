"""What a report attachment holds, opened with bounds: gzip, zip, XML or JSON.

Reporters compress; attackers compress harder. Every decompression here reads
in chunks and stops at `Limits.max_unpacked` bytes, or when the output grows past
`max_ratio` times its input once past one MiB (real aggregate reports compress
10-50x; the 42.zip family reaches millions). A zip's own size fields are never
trusted: the limit counts bytes actually produced. An archive inside an archive
is refused outright, since no reporter sends one. Truncated streams are refused,
not parsed as far as they go: half a report would undercount.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from mailctl.reports.model import Rejected

MiB = 1 << 20
CHUNK = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
_RATIO_FLOOR = 1 * MiB  # below this, any ratio is harmless


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for one message or file; `reports.limits` in mailctl.yaml sets them."""

    max_message: int = 25 * MiB  # a whole mail (a larger one is never downloaded)
    max_unpacked: int = 64 * MiB  # one report after decompression
    max_ratio: int = 200  # decompressed / compressed, past the first MiB
    max_members: int = 16  # files in one zip
    max_parts: int = 64  # MIME parts in one mail
    max_records: int = 250_000  # rows in one aggregate report


DEFAULT_LIMITS = Limits()


def sniff(data: bytes) -> str:
    """gzip, zip, xml, json, mbox, mail or '' (unknown), from the first bytes."""
    if data.startswith(GZIP_MAGIC):
        return "gzip"
    if data.startswith(ZIP_MAGIC) or data.startswith(b"PK\x05\x06"):
        return "zip"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"\xff\xfe") or head.startswith(b"\xfe\xff"):
        return "xml" if b"<\x00" in head[:8] or b"\x00<" in head[:8] else ""
    if head.startswith(b"<"):
        return "xml"
    if head.startswith(b"{") or head.startswith(b"["):
        return "json"
    if head.startswith(b"From "):
        return "mbox"
    first = head.split(b"\n", 1)[0]
    name, colon, _ = first.partition(b":")
    if colon and name and all(33 <= c <= 126 for c in name) and b" " not in name:
        return "mail"
    return ""


def _check(out_len: int, in_len: int, limits: Limits, what: str) -> None:
    if out_len > limits.max_unpacked:
        raise Rejected("too_large", f"{what} unpacks to more than "
                       f"{limits.max_unpacked // MiB} MiB (limit reports.limits.max_unpacked)")
    if out_len > _RATIO_FLOOR and out_len > limits.max_ratio * max(in_len, 1):
        raise Rejected("bomb", f"{what} expands more than {limits.max_ratio}x "
                       "(a decompression bomb, not a report)")


def gunzip(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """All members of a gzip stream, bounded; truncated or corrupt data is refused."""
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        buf = rest
        try:
            while buf:
                out += d.decompress(buf, CHUNK)
                _check(len(out), len(data), limits, "the gzip data")
                buf = d.unconsumed_tail
            while not d.eof:
                piece = d.decompress(b"", CHUNK)
                if not piece:
                    break
                out += piece
                _check(len(out), len(data), limits, "the gzip data")
        except zlib.error as exc:
            raise Rejected("corrupt", f"corrupt gzip data ({exc})") from None
        if not d.eof:
            raise Rejected("truncated", "the gzip data is truncated (no end of stream)")
        rest = d.unused_data.lstrip(b"\x00")  # padding after the last member is common
        if rest and not rest.startswith(GZIP_MAGIC):
            break  # trailing garbage after a complete member: ignored, as gzip(1) does
    return bytes(out)


def unzip(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[tuple[str, bytes]]:
    """The report files of a zip (name, content), bounded; other members are skipped."""
    import io
    import zipfile

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise Rejected("corrupt", f"not a readable zip file ({exc})") from None
    if len(infos) > limits.max_members:
        raise Rejected("bomb", f"the zip holds {len(infos)} files "
                       f"(limit {limits.max_members}; a report zip holds one)")
    if not infos:
        raise Rejected("empty", "the zip is empty")
    wanted = [i for i in infos if i.filename.lower().endswith((".xml", ".json"))] or infos[:1]
    files: list[tuple[str, bytes]] = []
    total = 0
    for info in wanted:
        if info.flag_bits & 0x1:
            raise Rejected("encrypted", f"zip member {_safe_name(info.filename)} is encrypted")
        out = bytearray()
        try:
            with zf.open(info) as fh:
                while True:
                    piece = fh.read(CHUNK)
                    if not piece:
                        break
                    out += piece
                    _check(total + len(out), len(data), limits, "the zip")
        except Rejected:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                RuntimeError, ValueError) as exc:
            raise Rejected("corrupt", f"zip member {_safe_name(info.filename)} cannot be "
                           f"read ({exc})") from None
        total += len(out)
        files.append((info.filename, bytes(out)))
    return files


def _safe_name(name: str) -> str:
    return repr(name[:80])


def unpack(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[tuple[str, bytes]]:
    """`data` as report documents (XML or JSON bytes): decompressed if it is gzip or zip,
    as it is otherwise. An archive inside the archive is refused."""
    kind = sniff(data)
    if kind == "gzip":
        docs = [(name.removesuffix(".gz"), gunzip(data, limits))]
    elif kind == "zip":
        docs = unzip(data, limits)
    else:
        return [(name, data)]
    for inner, doc in docs:
        if sniff(doc) in ("gzip", "zip"):
            raise Rejected("nested", f"{_safe_name(inner)}: an archive inside an archive "
                           "(no reporter sends one; refused as a possible bomb)")
    return docs
