"""The commented starter config `mailctl init` writes, one per provider type.

Each one validates as written (for hosted providers, once the variable its
`${env:...}` reference names is set), uses only features its provider has,
and holds references, never secrets; a test runs `validate` on every one.
"""

from __future__ import annotations

PROVIDERS = ("dms", "mailcow", "migadu", "mailu", "stalwart")

_BLOCKS = {
    "dms": (
        "    type: dms                   # docker-mailserver's config folder\n"
        "    path: ./dms                 # relative to this file; `mailctl sandbox up` serves it\n",
        None),
    "mailcow": (
        "    type: mailcow\n"
        "    url: https://mail.example.org         # the /api/v1 prefix is added\n"
        "    api_key: ${env:MAILCOW_API_KEY}       # a read-write API key\n",
        "MAILCOW_API_KEY"),
    "migadu": (
        "    type: migadu\n"
        "    user: admin@example.org               # the Migadu account's admin email\n"
        "    api_key: ${env:MIGADU_API_KEY}\n",
        "MIGADU_API_KEY"),
    "mailu": (
        "    type: mailu\n"
        "    url: https://mail.example.org         # /api/v1 is added when missing\n"
        "    api_token: ${env:MAILU_API_TOKEN}     # Mailu's API_TOKEN\n",
        "MAILU_API_TOKEN"),
    "stalwart": (
        "    type: stalwart\n"
        "    url: https://mail.example.org\n"
        "    api_key: ${env:STALWART_API_KEY}      # an API key or OAuth token\n",
        "STALWART_API_KEY"),
}

_BODY = """\
# mailctl.yaml: the mail domain as code (docs/config.md).
#   mailctl validate     check this file; changes nothing
#   mailctl plan         what apply would change
#   mailctl apply        make the provider match (create-only unless --reconcile/--prune)
# Secrets are references, never values: ${{env:NAME}} (or NAME= in a .env file
# beside this one) or ${{file:path}}. Keep this file in git; keep secrets out.
version: 1

providers:
  main:
{block}
domains:
  example.org:                    # your domain
    provider: main
    # quota: 5G                   # default quota of this domain's mailboxes
    mailboxes:
      - local_part: alice         # alice@example.org; a password is generated on
        aliases: [ceo]            # create and shown once (or --secrets-out FILE)
        # password: ${{env:ALICE_PASSWORD}}
      - local_part: bob
    aliases:
      - local_part: info
        destinations: [alice, bob]    # a bare local part means this domain
    # unmanaged: ["tmp.*"]        # addresses plan/apply never touch

# Refuse an apply that would update or delete more than these shares of a
# domain's existing objects (for domains with at least min_existing objects).
safety:
  max_update_share: 0.3
  max_delete_share: 0.3
  min_existing: 10
"""


def starter_config(provider: str, schema_ref: str | None = None) -> str:
    """The file's text; `schema_ref` adds the modeline editors read the schema from."""
    block, _ = _BLOCKS[provider]
    head = f"# yaml-language-server: $schema={schema_ref}\n" if schema_ref else ""
    return head + _BODY.format(block=block)


def needed_variable(provider: str) -> str | None:
    """The environment variable the starter's secret reference names, if any."""
    return _BLOCKS[provider][1]
