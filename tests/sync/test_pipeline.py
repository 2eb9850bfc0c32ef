"""The overlapped copy (pipeline.Copier) and the lean argv parser, without servers.

An in-memory store stands in for IMAP so that the ordering guarantees can be
checked exactly: pairs are committed only for batches the target confirmed,
an upload error ends the folder with an error instead of a hang, and a re-run
completes the copy without duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailctl.sync import engine, fastcli
from mailctl.sync.model import FolderStatus, Msg, Scan, SyncError
from mailctl.sync.state import State


class MemStore:
    """A one-account IMAP-like store: UIDs from 1, MODSEQ bumped on every change."""

    def __init__(self, label: str, fail_on_append: int = 0, fail_folder: str = "") -> None:
        self.label = label
        self.boxes: dict[str, dict[str, tuple[str, str, bytes]]] = {}
        self.next: dict[str, int] = {}
        self.modseq = 1
        self.appends = 0
        self.fail_on_append = fail_on_append  # the n-th append call raises
        self.fail_folder = fail_folder  # every append there raises
        self.windows = 0

    def folders(self) -> dict[str, FolderStatus]:
        return {n: s for n in self.boxes if (s := self.status(n)) is not None}

    def status(self, folder: str) -> FolderStatus | None:
        if folder not in self.boxes:
            return None
        return FolderStatus(7, self.next[folder], len(self.boxes[folder]), self.modseq)

    def create(self, folder: str) -> None:
        self.boxes.setdefault(folder, {})
        self.next.setdefault(folder, 1)

    def scan(self, folder: str, since_uid: int = 0, since_modseq: int = 0) -> Scan:
        box = self.boxes.get(folder, {})
        return Scan(set(box), {k: (v[0], len(v[2])) for k, v in box.items()}, self.modseq)

    def scan_chunks(self, folder: str, since_uid: int = 0, since_modseq: int = 0
                    ) -> Iterator[Scan]:
        keys = sorted(self.boxes.get(folder, {}), key=int)
        for i in range(0, len(keys), 4):  # windows of 4, like imapstore's SCAN_WINDOW
            self.windows += 1
            box = self.boxes[folder]
            part = keys[i:i + 4]
            yield Scan(set(part), {k: (box[k][0], len(box[k][2])) for k in part}, self.modseq)

    def fetch(self, folder: str, keys: list[str], sizes: dict[str, int]) -> Iterator[Msg]:
        for k in keys:
            flags, date, body = self.boxes[folder][k]
            yield Msg(k, flags, date, body)

    def append(self, folder: str, msgs: list[Msg]) -> list[str | None]:
        self.appends += 1
        if self.appends == self.fail_on_append or folder == self.fail_folder:
            raise SyncError(f"{self.label}: APPEND refused: quota")
        self.create(folder)
        out: list[str | None] = []
        for m in msgs:
            uid = str(self.next[folder])
            self.next[folder] += 1
            self.boxes[folder][uid] = (m.flags, m.date, m.body)
            out.append(uid)
        self.modseq += 1
        return out

    def set_flags(self, folder: str, changes: dict[str, str]) -> None:
        for k, f in changes.items():
            _, d, b = self.boxes[folder][k]
            self.boxes[folder][k] = (f, d, b)
        self.modseq += 1

    def delete(self, folder: str, keys: list[str]) -> None:
        for k in keys:
            self.boxes[folder].pop(k, None)
        self.modseq += 1

    def clone(self) -> MemStore:
        """Folder workers share the one in-memory account (each owns whole folders)."""
        return self

    def close(self) -> None:
        pass


def _source(n: int) -> MemStore:
    s = MemStore("mem:src")
    for folder in ("INBOX", "Archive"):
        s.append(folder, [Msg("", "\\Seen" if i % 2 else "", "01-Jan-2025 10:00:00 +0000",
                              b"Subject: %s %d\r\n\r\nbody\r\n" % (folder.encode(), i))
                          for i in range(n)])
    s.appends = 0
    return s


def _bodies(s: MemStore, folder: str) -> list[bytes]:
    return sorted(v[2] for v in s.boxes.get(folder, {}).values())


def test_windows_and_batches_copy_everything_once(tmp_path: Path) -> None:
    src, dst = _source(23), MemStore("mem:dst")
    state = State(tmp_path / "s.db")
    opts = engine.Options(batch_count=5)
    rep = engine.run(src, dst, state, opts)
    assert rep.ok and rep.total("copied") == 46 and src.windows == 12
    assert dst.appends >= 10  # many batches went through the uploader thread
    for f in ("INBOX", "Archive"):
        assert _bodies(dst, f) == _bodies(src, f)
    assert len(state.pairs("INBOX")) == 23
    again = engine.run(src, dst, state, opts)
    assert again.total("copied") == 0 and all(f.unchanged for f in again.folders)
    src.set_flags("INBOX", {"1": "\\Flagged"})
    src.append("INBOX", [Msg("", "", "", b"Subject: late\r\n\r\nx\r\n")])
    third = engine.run(src, dst, state, opts)
    assert third.total("copied") == 1 and third.total("flags") == 1
    assert dst.boxes["INBOX"][state.pairs("INBOX")["1"].dkey][0] == "\\Flagged"
    state.close()


def test_upload_error_stops_the_folder_keeps_confirmed_batches_and_resumes(
        tmp_path: Path) -> None:
    src, dst = _source(20), MemStore("mem:dst", fail_on_append=3)
    state = State(tmp_path / "s.db")
    opts = engine.Options(batch_count=4, folders=["INBOX"])
    rep = engine.run(src, dst, state, opts)
    inbox = rep.folders[0]
    assert inbox.error and "quota" in inbox.error
    # exactly the two confirmed batches are recorded; nothing after the failure
    assert len(dst.boxes["INBOX"]) == 8 and len(state.pairs("INBOX")) == 8
    assert "INBOX" not in state.folders()  # the folder is not marked done
    again = engine.run(src, dst, state, opts)
    assert again.ok and again.total("copied") == 12
    assert _bodies(dst, "INBOX") == _bodies(src, "INBOX")  # complete, no duplicates
    state.close()


def test_unrecorded_target_messages_are_adopted_not_copied(tmp_path: Path) -> None:
    """What a kill -9 between the target's OK and the state commit leaves behind."""
    src, dst = _source(10), MemStore("mem:dst")
    dst.append("INBOX", [Msg("", "", "", src.boxes["INBOX"][k][2]) for k in ("2", "5", "9")])
    state = State(tmp_path / "s.db")
    rep = engine.run(src, dst, state, engine.Options(batch_count=3, folders=["INBOX"]))
    assert rep.ok and rep.total("adopted") == 3 and rep.total("copied") == 7
    assert _bodies(dst, "INBOX") == _bodies(src, "INBOX")
    # the adopted ones got the source's flags (UID 2 and 9 are unseen, 5 is \Seen)
    assert sorted(v[0] for v in dst.boxes["INBOX"].values()).count("\\Seen") == 5
    state.close()


def test_folder_workers_isolate_a_failing_folder(tmp_path: Path) -> None:
    src, dst = _source(30), MemStore("mem:dst", fail_folder="Archive")
    src.create("Empty")
    state = State(tmp_path / "s.db")
    rep = engine.run(src, dst, state, engine.Options(batch_count=7, jobs=3))
    by = {f.src: f for f in rep.folders}
    assert by["Archive"].error and "quota" in by["Archive"].error
    assert by["INBOX"].error is None and by["INBOX"].copied == 30
    assert _bodies(dst, "INBOX") == _bodies(src, "INBOX") and not dst.boxes.get("Archive")
    assert set(state.folders()) == {"INBOX", "Empty"}
    state.close()


@pytest.mark.parametrize("argv", [
    ["backup", "imap://u@h:1", "/tmp/x", "--password-file", "pw"],
    ["backup", "imap://u@h:1", "/tmp/x", "--password-ref", "${env:X}", "--no-fsync",
     "--dry-run", "--state", "s.db", "--json", "--jobs", "3"],
    ["restore", "/tmp/x", "imap://u@h", "--password-file", "pw", "--folders", "A*",
     "--exclude", "B", "--map", "A=B", "--ca-file", "c.pem"],
    ["sync", "imap://a@h", "imap://b@h", "--password1-file", "p1", "--password2-ref", "r",
     "--delete", "--force", "--max-delete-share", "0.5", "--map", "X=Y", "--map", "Z=W"],
    ["verify", "imap://a@h", "maildir:/x", "--password1-file", "p1", "--allow-extra", "--json"],
])
def test_quick_argv_parser_agrees_with_argparse(argv: list[str]) -> None:
    slow = {k: str(v) if isinstance(v, Path) else v  # the quick parser keeps paths as str
            for k, v in vars(fastcli._parser().parse_args(argv)).items()}
    assert fastcli._quick(argv) == slow


@pytest.mark.parametrize("argv", [
    ["verify", "a", "b", "--delete"], ["backup", "a"], ["backup", "a", "b", "c"],
    ["backup", "a", "b", "--password1-file", "x"], ["sync", "a", "b", "--max-delete-share"],
    ["backup", "a", "b", "--pass", "x"], ["backup", "a", "b", "--state=x"],
    ["verify", "a", "b", "--jobs", "2"],
])
def test_quick_argv_parser_leaves_the_unusual_to_argparse(argv: list[str]) -> None:
    assert fastcli._quick(argv) is None


class LateStore(MemStore):
    """A server that finishes commands after the client died: `late_writes` as IMAP's.
    The `die_on`-th append raises before the client sees its answer, but `lands` says
    whether and when the server commits it: "now", "settle" (while the next run waits
    for the folder to settle) or "later" (after the next run looked at the target)."""

    late_writes = True

    def __init__(self, label: str, die_on: int, lands: str) -> None:
        super().__init__(label)
        self.die_on, self.lands = die_on, lands
        self.held: list[tuple[str, list[Msg]]] = []
        self.status_calls = 0

    def append(self, folder: str, msgs: list[Msg]) -> list[str | None]:
        if self.appends + 1 == self.die_on:
            self.appends += 1
            if self.lands == "now":
                super().append(folder, msgs)
                self.appends -= 1
            else:
                self.held.append((folder, msgs))
            raise KeyboardInterrupt("killed")  # stands for kill -9 before the OK
        return super().append(folder, msgs)

    def land(self) -> None:
        for folder, msgs in self.held:
            super().append(folder, msgs)
            self.appends -= 1
        self.held = []

    def status(self, folder: str) -> FolderStatus | None:
        self.status_calls += 1
        if self.lands == "settle" and self.held and self.status_calls > 1:
            self.land()
        return super().status(folder)


@pytest.mark.parametrize("lands", ["now", "settle", "later"])
def test_a_batch_the_server_commits_after_the_client_died_is_not_duplicated(
        tmp_path: Path, lands: str) -> None:
    src, dst = _source(12), LateStore("mem:dst", die_on=2, lands=lands)
    opts = engine.Options(batch_count=4, folders=["INBOX"])
    state = State(tmp_path / "s.db")
    with pytest.raises(KeyboardInterrupt):
        engine.run(src, dst, state, opts)
    state.close()
    assert len(dst.boxes["INBOX"]) == (8 if lands == "now" else 4)
    state = State(tmp_path / "s.db")  # the next run, at once
    assert state.pending_folders() == {"INBOX"}
    again = engine.run(src, dst, state, opts)
    assert again.ok
    inbox = again.folders[0]
    if lands == "later":  # after this run's look: it copied them again...
        assert (inbox.copied, inbox.adopted) == (8, 0)
        dst.land()
        assert len(dst.boxes["INBOX"]) == 16  # ...and now the server has both copies
        state.close()
        state = State(tmp_path / "s.db")
        third = engine.run(src, dst, state, opts)
        assert third.ok and third.total("late_duplicates") == 4
        assert third.total("copied") == 0
    else:  # at the target before the look: recognised, not copied again
        assert (inbox.copied, inbox.adopted, inbox.late_duplicates) == (4, 4, 0)
    assert _bodies(dst, "INBOX") == _bodies(src, "INBOX")
    assert state.pending_folders() == {"INBOX"}  # kept a while for even later commits
    state.close()


class NoUidStore(LateStore):
    """A server without UIDPLUS: APPEND says nothing about the new messages' UIDs."""

    def append(self, folder: str, msgs: list[Msg]) -> list[str | None]:
        super().append(folder, msgs)
        return [None] * len(msgs)


def test_without_appenduid_nothing_recorded_is_taken_for_a_late_copy(tmp_path: Path) -> None:
    """Recorded copies whose target UID is unknown look like unknown target messages; a
    crash's pending uploads (which here never land) must not make the engine delete one
    of them as a late copy of itself."""
    src, dst = _source(12), NoUidStore("mem:dst", die_on=2, lands="never")
    opts = engine.Options(batch_count=4, folders=["INBOX"])
    state = State(tmp_path / "s.db")
    with pytest.raises(KeyboardInterrupt):
        engine.run(src, dst, state, opts)
    state.close()
    for _ in range(2):  # the re-sent batch is recorded without UIDs, then looked at again
        state = State(tmp_path / "s.db")
        rep = engine.run(src, dst, state, opts)
        state.close()
        assert rep.ok and rep.total("late_duplicates") == 0
        assert _bodies(dst, "INBOX") == _bodies(src, "INBOX")
