"""QR codes inline as `data:` SVG, so a code holding a secret is never a URL of its own.

A separate image route would need the secret in its URL (or a server-side
stash); inline, the code lives only in the one no-store page that shows it."""

from __future__ import annotations


def qr_data_uri(payload: str) -> str:
    import segno

    code = segno.make(payload, error="m", micro=False)
    uri: str = code.svg_data_uri(scale=5, border=3, dark="#000", light="#fff")
    return uri
