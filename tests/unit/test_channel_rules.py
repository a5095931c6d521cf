"""Pure rules of the broker: namespaces, scopes, offset planning, settings."""

from __future__ import annotations

import pytest

from tidings.channels.access import denial, is_admin, scope_allows, valid_scope
from tidings.channels.namespaces import (
    Namespace,
    channel_owner,
    default_namespaces,
    namespace_name,
)
from tidings.config import load_settings
from tidings.store.channels import (
    IDEMPOTENCY_WINDOW_MS,
    NewPublication,
    Retention,
    plan_appends,
    utc_day,
)


def test_namespace_is_the_prefix_before_the_first_colon():
    assert namespace_name("room:lobby:east") == "room"
    assert namespace_name("news") == ""
    assert namespace_name(":odd") == ""


def test_channel_owner_is_the_user_id_after_the_prefix():
    assert channel_owner("user:42") == 42
    assert channel_owner("user:42:inbox") == 42
    assert channel_owner("user:alice") is None
    assert channel_owner("user:") is None
    assert channel_owner("user42") is None
    assert channel_owner("user:٤٢") is None  # non-ASCII digits are not an id
    assert channel_owner("user:" + "9" * 20) is None


def test_scopes_match_channel_patterns_per_action():
    scopes = ("publish:room:*", "subscribe:news")
    assert scope_allows(scopes, "publish", "room:a")
    assert not scope_allows(scopes, "publish", "news")
    assert scope_allows(scopes, "subscribe", "news")
    assert not scope_allows(scopes, "subscribe", "newsroom")
    assert scope_allows(None, "publish", "anything")
    assert not scope_allows((), "subscribe", "news")
    assert scope_allows(("admin",), "publish", "x")
    assert is_admin(("admin",)) and not is_admin(None) and not is_admin(("publish:*",))


@pytest.mark.parametrize("scope, ok", [
    ("admin", True), ("publish:*", True), ("subscribe:room:?", True),
    ("publish:", False), ("read:x", False), ("admin:x", False), ("", False)])
def test_valid_scopes(scope, ok):
    assert valid_scope(scope) is ok


def test_denials_name_what_is_missing():
    spaces = default_namespaces()
    assert denial("publish", "room:a", spaces["room"], 1, None) is None
    assert "admin scope" in (denial("publish", "broadcast:x", spaces["broadcast"], 1, None)
                             or "")
    assert denial("publish", "broadcast:x", spaces["broadcast"], 1, ("admin",)) is None
    assert denial("subscribe", "user:7", spaces["user"], 7, None) is None
    assert "only the user" in (denial("subscribe", "user:7", spaces["user"], 8, None) or "")
    assert "subscribe:room:a" in (denial("subscribe", "room:a", spaces["room"], 1,
                                         ("publish:*",)) or "")
    closed = Namespace(subscribe="none")
    assert "allows no client" in (denial("subscribe", "x", closed, 1, None) or "")
    assert "(no prefix)" in (denial("subscribe", "x", closed, 1, None) or "")
    assert denial("subscribe", "x", closed, 1, ("admin",)) is None


def pub(channel: str = "c", key: str | None = None, keep: int = 10) -> NewPublication:
    return NewPublication(channel, "message", "1", 1, "d", Retention(keep, 60_000), key)


def test_plan_assigns_offsets_per_channel_and_resolves_keys():
    now = 10_000_000
    known = {("c", "old"): (3, now - IDEMPOTENCY_WINDOW_MS - 1),  # expired: publish anew
             ("c", "fresh"): (4, now - 1000)}
    plan = plan_appends([pub(key="old"), pub(key="fresh"), pub("d"), pub(key="new"),
                         pub(key="new")], {"c": 5, "d": 0}, known, now)
    assert [(r.channel, r.offset, r.duplicate) for r in plan.results] == [
        ("c", 6, False), ("c", 4, True), ("d", 1, False), ("c", 7, False), ("c", 7, True)]
    assert plan.tops == {"c": 7, "d": 1}
    assert [k[:3] for k in plan.keys] == [("c", "old", 6), ("c", "new", 7)]
    assert plan.counts == {(utc_day(now), "message"): 3}
    assert plan.trims == {"c": (7 - 10, now - 60_000), "d": (1 - 10, now - 60_000)}


def test_plan_stores_nothing_for_channels_without_history():
    plan = plan_appends([pub(keep=0)], {}, {}, 1000)
    assert plan.stored == [] and plan.results[0].publication is not None


def test_namespaces_come_from_json_env_or_toml(tmp_path):
    settings = load_settings(environ={"TIDINGS_NAMESPACES": '{"chat": {"history_size": 5}}'})
    assert settings.namespaces == {"chat": Namespace(history_size=5)}
    toml = tmp_path / "t.toml"
    toml.write_text('[namespaces.room]\npresence = false\nhistory_ttl = 60\n')
    settings = load_settings(str(toml), environ={})
    assert settings.namespaces["room"].retention == Retention(100, 60_000)
    with pytest.raises(ValueError, match="namespaces is not JSON"):
        load_settings(environ={"TIDINGS_NAMESPACES": "{nope"})
    with pytest.raises(ValueError, match="invalid setting"):
        load_settings(environ={"TIDINGS_NAMESPACES": '{"x": {"subscribe": "everyone"}}'})
