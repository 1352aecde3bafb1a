"""A flood of refused calls is a few audit lines, not one line (an exclusive lock and an fsync
on the event loop) each: the first denial of a kind at once, the rest of its window counted."""

from __future__ import annotations

from shelfwise.governance import AuditLog
from shelfwise.serving import _http_auth
from shelfwise.serving._http_auth import Denials


def test_denials_of_one_kind_within_a_window_are_one_entry_with_their_count(tmp_path, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(_http_auth.time, "monotonic", lambda: now[0])
    d = Denials(tmp_path)
    for _ in range(500):
        d.deny("anonymous", "serve.call", "/v1/search", 401)
    d.deny("mia", "serve.admin", "/v1/models/reload", 403)  # another kind: at once
    denied = [e for e in AuditLog(tmp_path).entries() if e["action"] == "access.denied"]
    assert [(e["actor"], e["details"].get("repeated")) for e in denied] == [
        ("anonymous", None),
        ("mia", None),
    ]
    d.flush(passed_only=True)  # (every window's length while serving) the window has not passed
    assert len([e for e in AuditLog(tmp_path).entries() if e["action"] == "access.denied"]) == 2
    now[0] += _http_auth.DENIAL_WINDOW_S  # it passed: the held ones are written, no new denial needed
    d.flush(passed_only=True)
    d.deny("anonymous", "serve.call", "/v1/search", 401)
    d.flush()  # (the server's stop)
    denied = [e for e in AuditLog(tmp_path).entries() if e["action"] == "access.denied"]
    got = [(e["actor"], e["details"]["status"], e["details"].get("repeated")) for e in denied]
    assert got == [
        ("anonymous", 401, None),
        ("mia", 403, None),
        ("anonymous", 401, 499),
        ("anonymous", 401, None),
    ]
    assert sum(e["details"].get("repeated", 1) for e in denied) == 502  # every denial counted
    assert AuditLog(tmp_path).verify().ok
