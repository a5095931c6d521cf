"""The delivery ledger: what was sent, what was acknowledged, what each device saw.

Clients write to it while a run goes on; :meth:`Ledger.check` then proves, or
refutes with a list of problems, the promise of README.md: **a message
acknowledged to its sender reaches every device of its recipient (and every
other device of its sender) exactly once, in order; nothing arrives that was
not sent.**

It checks two views of each device, so that neither can hide a fault of the
other:

* **events** — the chat messages the SDK yielded (after its de-duplication):
  every acknowledged message exactly once, ids strictly increasing, each
  conversation in the order its sender sent it;
* **raw** — every message the server put on the wire, per connection (pushes
  and backlog pages): within one connection each id at most once and strictly
  increasing (the server's own promise, whatever the SDK drops), the union over
  connections equal to what the SDK yielded. A message may come again on a
  later connection when the device had not confirmed it; those are counted.

Every delivered message, in both views, must match a sent one exactly (sender,
recipient, content) and carry the id its ``ChatAck`` gave, if it got one. A
message sent without an ack (lost ack, refused commit, crash) may be delivered
or not, but at most once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sent:
    """One chat a device sent; ``content`` is unique: ``"<device>|<n>"``."""

    content: str
    sender: int
    device: str
    to: int
    index: int  # n: the order in which this device sent it
    message_id: int | None = None  # from the ChatAck, if one came
    refused: str = ""  # the error code, if the server refused it


@dataclass(frozen=True)
class Delivered:
    """A chat message as a device saw it."""

    message_id: int
    sender: int
    to: int
    content: str


@dataclass
class Figures:
    """What a check counted."""

    sent: int = 0
    acked: int = 0
    refused: int = 0
    expected_deliveries: int = 0  # acknowledged messages times the devices that must get them
    delivered: int = 0  # SDK events
    raw_frames: int = 0  # messages on the wire, re-deliveries included
    redelivered: int = 0  # a message sent again on a later connection of the same device
    unacked_delivered: int = 0  # stored although its sender never got the ack
    connections: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    phantom: int = 0

    def as_dict(self) -> dict[str, int]:
        """The figures by name."""
        return dict(self.__dict__)


class LedgerError(AssertionError):
    """The run broke the delivery promise; ``problems`` says how."""

    def __init__(self, problems: list[str], figures: Figures) -> None:
        shown = "\n  ".join(problems[:30])
        more = f"\n  … and {len(problems) - 30} more" if len(problems) > 30 else ""
        super().__init__(f"{len(problems)} delivery problems:\n  {shown}{more}\n{figures}")
        self.problems = problems
        self.figures = figures


@dataclass
class _Device:
    user_id: int
    connections: list[list[Delivered]] = field(default_factory=list)
    events: list[Delivered] = field(default_factory=list)


class Ledger:
    """Records of one run; the writers are the traffic clients."""

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}
        self._sent: dict[str, Sent] = {}
        self._next_index: Counter[str] = Counter()

    # writers

    def add_device(self, device: str, user_id: int) -> None:
        """Declare a device before it connects."""
        self._devices[device] = _Device(user_id)

    def send(self, device: str, to: int) -> Sent:
        """Record a chat the device is about to send; its ``content`` is what to send."""
        index = self._next_index[device]
        self._next_index[device] += 1
        sent = Sent(f"{device}|{index}", self._devices[device].user_id, device, to, index)
        self._sent[sent.content] = sent
        return sent

    def connected(self, device: str) -> None:
        """The device opened a new connection (raw deliveries start a new list)."""
        self._devices[device].connections.append([])

    def on_wire(self, device: str, message: dict[str, Any]) -> None:
        """A message the server sent on the device's current connection."""
        self._devices[device].connections[-1].append(_delivered(message))

    def on_event(self, device: str, message_id: int, sender: int, to: int,
                 content: str) -> None:
        """A chat message the SDK yielded to the application."""
        self._devices[device].events.append(Delivered(message_id, sender, to, content))

    # readers

    def connections(self) -> dict[str, int]:
        """How many connections each device has opened so far."""
        return {name: len(dev.connections) for name, dev in self._devices.items()}

    def on_wire_count(self) -> int:
        """How many chat messages came on the wire so far, re-deliveries included."""
        return sum(len(c) for dev in self._devices.values() for c in dev.connections)

    def acked(self) -> int:
        """How many chats got their ``ChatAck`` so far."""
        return sum(s.message_id is not None for s in self._sent.values())

    def expected(self, device: str) -> dict[int, Sent]:
        """Acknowledged messages this device must get, by id."""
        user = self._devices[device].user_id
        return {s.message_id: s for s in self._sent.values()
                if s.message_id is not None
                and (s.to == user or (s.sender == user and s.device != device))}

    def missing(self) -> int:
        """How many expected deliveries the SDK has not yielded yet (0 = settled)."""
        count = 0
        for name, dev in self._devices.items():
            seen = {d.message_id for d in dev.events}
            count += sum(1 for mid in self.expected(name) if mid not in seen)
        return count

    def check(self) -> Figures:
        """Check every rule of the module doc; raise :class:`LedgerError` if one broke."""
        fig = Figures(sent=len(self._sent),
                      acked=sum(s.message_id is not None for s in self._sent.values()),
                      refused=sum(bool(s.refused) for s in self._sent.values()))
        problems: list[str] = []
        by_id: dict[int, Sent] = {}
        for s in self._sent.values():
            if s.message_id is None:
                continue
            if s.message_id in by_id:
                problems.append(f"id {s.message_id} acknowledged for both "
                                f"{by_id[s.message_id].content!r} and {s.content!r}")
            by_id[s.message_id] = s
        unacked_seen: set[str] = set()
        for name, dev in self._devices.items():
            expected = self.expected(name)
            fig.expected_deliveries += len(expected)
            fig.connections += len(dev.connections)
            problems += self._check_events(name, dev, expected, fig, unacked_seen)
            problems += self._check_raw(name, dev, fig)
        fig.unacked_delivered = len(unacked_seen)
        if problems:
            raise LedgerError(problems, fig)
        return fig

    def _match(self, where: str, d: Delivered, user: int, device: str,
               fig: Figures) -> tuple[list[str], Sent | None]:
        """Check that a delivered message is one that was sent, to or from this device."""
        sent = self._sent.get(d.content)
        if sent is None or (sent.sender, sent.to) != (d.sender, d.to):
            fig.phantom += 1
            return [f"{where}: message {d.message_id} {d.content!r} from {d.sender} to "
                    f"{d.to} was never sent"], None
        if sent.message_id is not None and sent.message_id != d.message_id:
            fig.phantom += 1
            return [f"{where}: {d.content!r} arrived as id {d.message_id}, acknowledged as "
                    f"{sent.message_id}"], None
        if user not in (sent.to, sent.sender) or sent.device == device:
            fig.phantom += 1
            return [f"{where}: {d.content!r} is not for this device"], None
        return [], sent

    def _check_events(self, name: str, dev: _Device, expected: dict[int, Sent],
                      fig: Figures, unacked_seen: set[str]) -> list[str]:
        problems: list[str] = []
        fig.delivered += len(dev.events)
        counts = Counter(d.message_id for d in dev.events)
        for mid, n in counts.items():
            if n > 1:
                fig.duplicated += n - 1
                problems.append(f"{name}: message {mid} yielded {n} times")
        for mid, sent in expected.items():
            if mid not in counts:
                fig.lost += 1
                problems.append(f"{name}: acknowledged message {mid} {sent.content!r} "
                                "never delivered")
        last_id = 0
        last_index: dict[str, int] = {}
        for d in dev.events:
            found, sent = self._match(f"{name} event", d, dev.user_id, name, fig)
            problems += found
            if d.message_id <= last_id:
                fig.out_of_order += 1
                problems.append(f"{name}: id {d.message_id} yielded after {last_id}")
            last_id = max(last_id, d.message_id)
            if sent is None:
                continue
            if sent.message_id is None:
                unacked_seen.add(sent.content)
            if sent.index <= last_index.get(sent.device, -1):
                fig.out_of_order += 1
                problems.append(f"{name}: {sent.content!r} arrived after a later message "
                                f"of the same conversation")
            last_index[sent.device] = sent.index
        return problems

    def _check_raw(self, name: str, dev: _Device, fig: Figures) -> list[str]:
        problems: list[str] = []
        seen_on: Counter[int] = Counter()
        for n, conn in enumerate(dev.connections, 1):
            fig.raw_frames += len(conn)
            last_id = 0
            for d in conn:
                if d.message_id <= last_id:
                    problems.append(f"{name} connection {n}: id {d.message_id} sent after "
                                    f"{last_id} (the server repeated or reordered)")
                    fig.out_of_order += d.message_id != last_id
                    fig.duplicated += d.message_id == last_id
                last_id = max(last_id, d.message_id)
                problems += self._match(f"{name} wire", d, dev.user_id, name, fig)[0]
            for mid in {d.message_id for d in conn}:
                seen_on[mid] += 1
        fig.redelivered += sum(n - 1 for n in seen_on.values())
        events = {d.message_id for d in dev.events}
        if set(seen_on) != events:
            problems.append(f"{name}: the SDK yielded {sorted(events - set(seen_on))[:5]} "
                            f"that never came on the wire and dropped "
                            f"{sorted(set(seen_on) - events)[:5]} that did")
        return problems


def _delivered(message: dict[str, Any]) -> Delivered:
    return Delivered(int(message["message_id"]), int(message["from"]), int(message["to"]),
                     str(message["content"]))
