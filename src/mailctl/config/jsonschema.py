"""A JSON Schema of mailctl.yaml for editors, generated from the pydantic models.

The models are the truth (validation uses them); this only adapts their
schema to what a person may type where the models accept more than their
annotation says: sizes written as `5G`, a `catch_all` of one address, a
`local_part` that YAML reads as a number. Provider blocks get one variant per
provider type, so an editor completes `api_key` under `type: migadu` and
`path` under `type: dms`. `docs/config.schema.json` is this output; a test
keeps the two equal.
"""

from __future__ import annotations

import json
from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"

_SIZE = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\s*[0-9]+\s*[KMGTkmgt]?([iI]?[Bb])?\s*$"},
        {"type": "null"},
    ],
    "description": "a size: 2G, 500M, 1536M, bytes, or 0 for unlimited (binary units)",
}
_ONE_OR_MANY = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}},
              {"type": "null"}],
    "description": "a local part, an address, or a list of them",
}
_LOCAL_PART = {"type": ["string", "integer"], "description": "the part before the @"}


def _adapt(node: Any) -> None:
    """Widen the fields whose validators accept more than their type (see module doc)."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for name in list(props):
                if name == "quota":
                    props[name] = dict(_SIZE)
                elif name == "catch_all":
                    props[name] = dict(_ONE_OR_MANY)
                elif name == "local_part":
                    props[name] = dict(_LOCAL_PART)
        for value in node.values():
            _adapt(value)
    elif isinstance(node, list):
        for value in node:
            _adapt(value)


def config_schema() -> dict[str, Any]:
    from mailctl import __version__
    from mailctl.config.schema import ConfigFile
    from mailctl.providers import provider_class, provider_types

    schema: dict[str, Any] = {"$schema": DRAFT, "title": "mailctl.yaml",
                              "description": f"mailctl {__version__} configuration "
                              "(docs/config.md)"}
    schema.update(ConfigFile.model_json_schema())
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    variants = []
    for type_name in provider_types():
        sub = provider_class(type_name).settings_model.model_json_schema()
        for name, definition in sub.pop("$defs", {}).items():
            if name in defs and defs[name] != definition:
                raise RuntimeError(f"two settings models named {name} differ")  # pragma: no cover
            defs[name] = definition
        sub["properties"] = {"type": {"const": type_name, "description": "provider type"},
                             **sub.get("properties", {})}
        sub["required"] = ["type", *sub.get("required", [])]
        sub["additionalProperties"] = False
        sub["title"] = f"{type_name} provider"
        key = f"Provider_{type_name}"
        defs[key] = sub
        variants.append({"$ref": f"#/$defs/{key}"})
    defs["ProviderConfig"] = {
        "title": "a provider", "description": "`type` picks the provider and its settings",
        "type": "object", "required": ["type"],
        "properties": {"type": {"enum": provider_types()}},
        "oneOf": variants,
    }
    _adapt(schema)
    return schema


def render() -> str:
    return json.dumps(config_schema(), indent=2, sort_keys=False, default=str) + "\n"
