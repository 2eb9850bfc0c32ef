"""Folder roles: the source's Sent goes into the target's Sent, whatever each calls it.

Without this a move from a server whose sent folder is "Sent Items" to one that
made "Sent" for every account leaves users with two sent folders, one of them
holding all their history and unknown to their mail client. Roles come from
SPECIAL-USE attributes (RFC 6154: \\Sent, \\Drafts, \\Junk, \\Trash,
\\Archive), which Dovecot, Gmail and Exchange report; a store that reports none
(a Maildir tree, an old server) is matched by the folder names clients
commonly use. The result is a list of `--map OLD=NEW` pairs, so the engine
needs nothing new, and the user's own `--map` entries always win.
"""

from __future__ import annotations

ROLES = ("Sent", "Drafts", "Junk", "Trash", "Archive")

# Lower-cased names by role, checked when a store reports no attribute.
NAMES = {
    "Sent": ("sent", "sent items", "sent messages", "sent mail", "[gmail]/sent mail",
             "gesendet", "gesendete objekte", "envoyés", "éléments envoyés", "enviados"),
    "Drafts": ("drafts", "draft", "[gmail]/drafts", "entwürfe", "brouillons", "borradores"),
    "Junk": ("junk", "spam", "junk e-mail", "junk email", "junk mail", "bulk mail",
             "[gmail]/spam", "courrier indésirable"),
    "Trash": ("trash", "deleted items", "deleted messages", "bin", "[gmail]/trash",
              "[gmail]/bin", "papierkorb", "corbeille", "gelöschte elemente", "papelera"),
    "Archive": ("archive", "archives", "archiv"),
}


def _by_name(folders: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for role, names in NAMES.items():
        for name in names:  # in order of preference
            hit = next((f for f in sorted(folders) if f.lower() == name
                        or f.lower() == "inbox/" + name), None)
            if hit is not None:
                out[role] = hit
                break
    return out


def roles(store: object) -> dict[str, str]:
    """role -> folder of `store` (attributes first, then names)."""
    listed = getattr(store, "special_use", None)
    found: dict[str, str] = dict(listed()) if callable(listed) else {}
    folders = store.folders()  # type: ignore[attr-defined]
    for role, folder in _by_name([f for f in folders if f != "INBOX"]).items():
        found.setdefault(role, folder)
    return {r: f for r, f in found.items() if r in ROLES}


def role_maps(src_roles: dict[str, str], dst_roles: dict[str, str],
              overrides: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The maps to give the engine: the user's `overrides` first (they win, and a source
    folder they name is not mapped again), then one per role both sides have under
    different names. A role the target lacks keeps the source's name (the engine
    creates that folder there)."""
    out = list(overrides or [])
    taken = {old for old, _ in out}
    for role in ROLES:
        s, d = src_roles.get(role), dst_roles.get(role)
        if s and d and s != d and s not in taken:
            out.append((s, d))
            taken.add(s)
    return out
