"""This node's channel subscriptions, and the in-order, at-most-once delivery to them.

Like the chat hub's catch-up: a subscription is registered *before* the store
is read, so a publication is either in the replay or arrives as a live event
(buffered until the replay is out), never in neither; after the replay the
buffer is flushed, skipping offsets already sent. Offsets of a channel are
contiguous, so a live publication more than one above the last one sent means
an event is late (another node's publish overtaken on the bus): delivery then
pauses and the broker refills the gap from the store.

A subscriber whose outbox is full is not closed as a slow consumer when its
channel keeps history: delivery pauses the same way, and the broker refills
from the store at the pace the client reads (a batch of 1000 publications
must not drop every subscriber). Without history it is closed (4413) as for chat.
Such a pause is counted as *lagging*: when many of a channel's subscribers lag at
once the node, not they, is too slow, and the broker paces the channel's publishers
(:meth:`ChannelRouter.congested`) so that they catch up instead of all falling behind
the history together.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from tidings.channels.wire import PublicationFrames
from tidings.gateway.connection import Connection
from tidings.store.channels import Publication

_MAX_BUFFERED = 1000  # publications held per paused subscription before relying on the store
# A channel is congested when at least this many of its subscribers here, and at least
# this share of them, lag at once; one slow subscriber alone never paces publishers.
_CONGESTED_AT_LEAST = 2
_CONGESTED_SHARE = 0.1


class Subscription:
    """One connection's subscription to one channel."""

    __slots__ = ("active", "buffered", "channel", "conn", "lagging", "live", "offset",
                 "overflowed", "refillable")

    def __init__(self, conn: Connection, channel: str, refillable: bool) -> None:
        self.conn = conn
        self.channel = channel
        self.refillable = refillable  # its channel keeps history to refill from
        self.offset = 0  # the highest offset sent (or skipped as already known)
        self.live = False  # False while replaying: live publications are buffered
        # Made when the first one is held: most subscriptions never hold any, and an
        # empty list on each of 50 000 idle subscribers is 2.7 MiB (issue 19).
        self.buffered: list[Publication] | None = None
        self.overflowed = False  # the buffer was dropped: the store has those
        self.active = True  # False once unsubscribed or disconnected
        self.lagging = False  # paused because its outbox was full (not a replay or a gap)


class ChannelRouter:
    """Subscriptions by channel and by connection. ``recover(sub)`` is called when a
    live subscription finds a gap; it must refill and then call :meth:`go_live`."""

    def __init__(self, recover: Callable[[Subscription], None]) -> None:
        self._by_channel: dict[str, dict[str, Subscription]] = {}
        # conn.id -> its one subscription, or its subscriptions by channel once it has two
        # or more. Most connections subscribe to one channel: a one-entry dict for each
        # would cost ~100 bytes more than the subscription it indexes (issue 19).
        self._by_conn: dict[str, Subscription | dict[str, Subscription]] = {}
        self._lagging: dict[str, int] = {}  # channel -> its subscriptions lagging
        self._recover = recover

    def add(self, conn: Connection, channel: str, *, refillable: bool) -> Subscription:
        """Register a subscription that starts buffering live publications at once."""
        # Interned: the name decoded from each client's Subscribe is a string of its own,
        # and 50 000 subscribers of one channel would otherwise each keep theirs.
        channel = sys.intern(channel)
        sub = Subscription(conn, channel, refillable)
        self._by_channel.setdefault(channel, {})[conn.id] = sub
        mine = self._by_conn.get(conn.id)
        if mine is None or (isinstance(mine, Subscription) and mine.channel == channel):
            self._by_conn[conn.id] = sub
        elif isinstance(mine, Subscription):  # its second channel: from now on a dict
            self._by_conn[conn.id] = {mine.channel: mine, channel: sub}
        else:
            mine[channel] = sub
        return sub

    def get(self, conn: Connection, channel: str) -> Subscription | None:
        """The connection's subscription to ``channel``, if any."""
        mine = self._by_conn.get(conn.id)
        if isinstance(mine, Subscription):
            return mine if mine.channel == channel else None
        return mine.get(channel) if mine is not None else None

    def _subscriptions(self, conn: Connection) -> list[Subscription]:
        """The connection's subscriptions, in the order they were made."""
        mine = self._by_conn.get(conn.id)
        if mine is None:
            return []
        return [mine] if isinstance(mine, Subscription) else list(mine.values())

    def channels_of(self, conn: Connection) -> list[str]:
        """The channels the connection is subscribed to."""
        return sorted(sub.channel for sub in self._subscriptions(conn))

    def count(self, conn: Connection) -> int:
        """How many channels the connection is subscribed to."""
        mine = self._by_conn.get(conn.id)
        return 0 if mine is None else 1 if isinstance(mine, Subscription) else len(mine)

    def remove(self, conn: Connection, channel: str) -> Subscription | None:
        """Forget one subscription; return it, or None if there was none."""
        sub = self._forget(conn, channel)
        if sub is None:
            return None
        sub.active = False
        self._set_lagging(sub, False)
        subs = self._by_channel.get(channel)
        if subs is not None:
            subs.pop(conn.id, None)
            if not subs:
                del self._by_channel[channel]
        return sub

    def _forget(self, conn: Connection, channel: str) -> Subscription | None:
        """Take the subscription out of the connection's index (see ``_by_conn``)."""
        mine = self._by_conn.get(conn.id)
        if isinstance(mine, Subscription):
            if mine.channel != channel:
                return None
            del self._by_conn[conn.id]
            return mine
        if mine is None:
            return None
        sub = mine.pop(channel, None)
        if len(mine) == 1:  # one left: held directly again
            self._by_conn[conn.id] = next(iter(mine.values()))
        return sub

    def drop(self, conn: Connection) -> list[Subscription]:
        """Forget every subscription of a closed connection; return them."""
        return [s for sub in self._subscriptions(conn)
                if (s := self.remove(conn, sub.channel)) is not None]

    def subscribers(self, channel: str) -> list[Subscription]:
        """The subscriptions to ``channel`` on this node."""
        return list(self._by_channel.get(channel, {}).values())

    def count_subscribers(self, channel: str) -> int:
        """How many subscriptions ``channel`` has on this node."""
        return len(self._by_channel.get(channel, ()))

    def congested(self, channel: str) -> bool:
        """True when many of the channel's subscribers lag at once (see module doc)."""
        lagging = self._lagging.get(channel, 0)
        return (lagging >= _CONGESTED_AT_LEAST
                and lagging >= _CONGESTED_SHARE * self.count_subscribers(channel))

    def _set_lagging(self, sub: Subscription, lagging: bool) -> None:
        if sub.lagging == lagging:
            return
        sub.lagging = lagging
        n = self._lagging.get(sub.channel, 0) + (1 if lagging else -1)
        if n:
            self._lagging[sub.channel] = n
        else:
            self._lagging.pop(sub.channel, None)

    def channels(self) -> dict[str, int]:
        """Subscriber count of every channel with subscribers here."""
        return {c: len(s) for c, s in self._by_channel.items()}

    def deliver(self, pub: Publication) -> int:
        """A publication was committed: push it to the channel's live subscribers (hold
        it for the others); return how many got it now."""
        subs = self._by_channel.get(pub.channel)
        if not subs:
            return 0
        frames = PublicationFrames(pub)
        pushed = 0
        for sub in list(subs.values()):
            if sub.live:
                pushed += self._offer(sub, pub, frames, accept_gap=False)
            else:
                self._hold(sub, pub)
        return pushed

    def go_live(self, sub: Subscription, *, accept_gaps: bool) -> None:
        """End a replay or refill: push what was buffered, then deliver live.

        ``accept_gaps``: the store had nothing more to fill a gap with (history
        trimmed or not kept), so deliver past it rather than refill again.
        """
        held, sub.buffered = sub.buffered, None
        buffered = sorted(held, key=lambda p: p.offset) if held else []
        sub.live = True
        self._set_lagging(sub, False)
        for pub in buffered:
            if not sub.live:  # a gap paused delivery again: keep the rest buffered
                self._hold(sub, pub)
                continue
            self._offer(sub, pub, PublicationFrames(pub), accept_gap=accept_gaps)

    def _offer(self, sub: Subscription, pub: Publication, frames: PublicationFrames, *,
               accept_gap: bool) -> bool:
        if pub.offset <= sub.offset or not sub.active:
            return False  # already sent (replay and live overlap) or unsubscribed
        gap = pub.offset > sub.offset + 1 and not accept_gap
        if gap or (sub.conn.full and sub.refillable):
            sub.live = False
            if not gap:
                self._set_lagging(sub, True)
            self._hold(sub, pub)
            self._recover(sub)
            return False
        if sub.conn.push(frames.get(sub.conn.binary)):
            sub.offset = pub.offset
            return True
        return False

    def _hold(self, sub: Subscription, pub: Publication) -> None:
        if sub.buffered is None:
            sub.buffered = []
        sub.buffered.append(pub)
        if len(sub.buffered) > _MAX_BUFFERED and sub.refillable:
            sub.buffered.clear()  # the refill reads these from the store
            sub.overflowed = True
