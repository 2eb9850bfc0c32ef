"""`mailctl init` (a commented starter config) and `mailctl schema` (JSON Schema for editors)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mailctl.cli.common import check_output_file, err, usage

SCHEMA_NAME = "mailctl.schema.json"


class ProviderType(StrEnum):
    dms = "dms"
    mailcow = "mailcow"
    migadu = "migadu"
    mailu = "mailu"
    stalwart = "stalwart"


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(schema)


def init(
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="where to write the config [default: $MAILCTL_CONFIG or "
        "./mailctl.yaml]", show_default=False)] = None,
    provider: Annotated[ProviderType, typer.Option(
        "--provider", "-p", help="the provider the starter domain is hosted on")
    ] = ProviderType.dms,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    no_schema: Annotated[bool, typer.Option(
        "--no-schema", help=f"do not write {SCHEMA_NAME} beside the config (nor the "
        "editor modeline that points at it)")] = False,
) -> None:
    """Write a commented starter config that validates as written.

    Beside it goes mailctl.schema.json, which editors with the YAML language
    server use for completion and checks (the file's first line points at it)."""
    from mailctl.config.load import default_path
    from mailctl.config.starter import needed_variable, starter_config
    from mailctl.util.atomic import atomic_write

    path = file or default_path()
    check_output_file(path, "--file")
    if path.exists() and not force:
        usage(f"{path} exists", "a new file, or --force to overwrite it")
    schema_path = path.parent / SCHEMA_NAME
    if not no_schema:
        check_output_file(schema_path, "the schema file")
    text = starter_config(provider.value, None if no_schema else f"./{SCHEMA_NAME}")
    if not no_schema:
        from mailctl.config.jsonschema import render

        atomic_write(schema_path, render(), 0o644)
    # References only, never a secret value: readable like any file kept in git.
    atomic_write(path, text, 0o644)
    print(f"wrote {path}" + ("" if no_schema else f" and {schema_path}"))
    var = needed_variable(provider.value)
    if var:
        err(f"next: export {var}=... (or add {var}=... to {path.parent / '.env'}), "
            f"then `mailctl validate -f {path}`")
    else:
        err(f"next: `mailctl sandbox up -f {path}` for a local server, then "
            f"`mailctl plan -f {path}`")


def schema(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="write to this file instead of stdout", show_default=False)]
    = None,
) -> None:
    """Print the JSON Schema of mailctl.yaml (for editors), generated from the models."""
    from mailctl.config.jsonschema import render

    if output is not None:
        check_output_file(output, "--output")
    text = render()
    if output is None:
        sys.stdout.write(text)
        return
    from mailctl.util.atomic import atomic_write

    atomic_write(output, text, 0o644)
    err(f"wrote {output}")
