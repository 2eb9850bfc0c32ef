"""The root of mailctl's exceptions, so a front end can catch "any mailctl failure".

The console turns one into a page, a job worker decides between retry and giving
up, the CLI maps one to an exit code (src/mailctl/cli/common.py) — each by
catching `MailctlError` at the level it cares about instead of a list of
unrelated classes. Branches keep their older bases (`ValueError`,
`RuntimeError`) where callers already catch those.

    MailctlError
     ├── ConfigError           config/errors.py   a config file's problems, file:line:col (exit 1)
     ├── YamlSyntaxError       config/yamlpos.py  unreadable YAML, or refused (aliases, nesting)
     ├── RefError (ValueError) config/refs.py     a secret reference that does not resolve
     ├── FileReadError (ValueError) util/files.py a file that cannot be read as text
     └── SandboxError (RuntimeError) sandbox/state.py  the local stack cannot do it (exit 1)

Other capabilities' roots (ProviderError, SyncError, AccountsError, ...) join
this tree as their modules are reworked.
"""

from __future__ import annotations


class MailctlError(Exception):
    """Something mailctl reports to a person: the message says what and where."""
