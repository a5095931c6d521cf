"""Tidings from a script, with the blocking client: two users, a chat, a channel, tokens.

    python quickstart.py [http://127.0.0.1:8443]

Registers two fresh users (alice-<n>, bob-<n>) on the server given, then: Alice sends
Bob a chat, Bob receives it over /ws and reads the history over HTTP; Bob publishes on a
channel Alice subscribed to; Alice makes a scoped token and revokes it. Prints what
happens, and exits non-zero if something did not.
"""

from __future__ import annotations

import secrets
import sys

from tidings_client import ChatMessage, Publication, SyncClient


def main(base_url: str) -> None:
    suffix = secrets.token_hex(3)
    password = "correct horse battery"  # noqa: S105  (a demo account on a test server)
    with SyncClient(base_url, timeout=20) as alice, SyncClient(base_url, timeout=20) as bob:
        alice_id = alice.register(f"alice-{suffix}", password).user_id
        bob_id = bob.register(f"bob-{suffix}", password).user_id
        alice.login(f"alice-{suffix}", password, device_id="laptop")
        bob.login(f"bob-{suffix}", password, device_id="phone")

        # A chat over /ws: send_chat returns once the server stored it.
        alice.connect(device_id="laptop")
        bob.connect(device_id="phone")
        ack = alice.send_chat(bob_id, "hello from a script")
        print(f"alice -> bob: message {ack.message_id} stored")
        chat = next(e for e in bob.events(timeout=10) if isinstance(e, ChatMessage))
        print(f"bob got #{chat.message_id} from {chat.from_}: {chat.content}")
        page = bob.history(alice_id, limit=10)
        print(f"bob's history with alice: {[m.content for m in page.messages]}")
        assert chat.content == "hello from a script" and page.messages[0].content == chat.content

        # A channel: Alice subscribes, Bob publishes over HTTP.
        channel = f"room:quickstart-{suffix}"
        alice.subscribe(channel)
        stored = bob.publish_http(channel, {"text": "standup in 5"}, type="notice")
        print(f"bob published on {channel} at offset {stored.offset}")
        pub = next(e for e in alice.events(timeout=10) if isinstance(e, Publication))
        print(f"alice got {pub.type} #{pub.offset} from user {pub.user_id}: {pub.data}")
        assert pub.data == {"text": "standup in 5"}
        print(f"retained: {len(alice.channel_history(channel).publications)} publication(s)")

        # Tokens: a scoped one for a bot, then revoked.
        bot = alice.create_token("bot", scopes=[f"publish:{channel}"], expires_in=3600)
        print(f"token {bot.id} ({bot.status}) scopes {bot.scopes}")
        assert alice.revoke_token(bot.id) == [bot.id]
        print(f"revoked; alice has {len(alice.tokens())} token(s), "
              f"presence of bob: {alice.presence([bob_id])[0].status}")
    print("quickstart: ok")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8443")
