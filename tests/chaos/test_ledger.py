"""The ledger's checker catches every fault it exists for (a check that cannot fail
proves nothing): loss, duplicates on the wire or from the SDK, reordering, messages
never sent, a wrong id, an SDK that drops or invents, and passes a correct run."""

from __future__ import annotations

import pytest

from tests.chaos.ledger import Ledger, LedgerError

ALICE, BOB = 1, 2


def _run() -> Ledger:
    """Alice (devices a1, a2) sends two chats to Bob (device b1), both acknowledged."""
    ledger = Ledger()
    for name, user in (("a1", ALICE), ("a2", ALICE), ("b1", BOB)):
        ledger.add_device(name, user)
        ledger.connected(name)
    for mid in (10, 11):
        ledger.send("a1", BOB).message_id = mid
    return ledger


def _deliver(ledger: Ledger, device: str, mid: int, content: str, *, wire: bool = True,
             event: bool = True, sender: int = ALICE, to: int = BOB) -> None:
    if wire:
        ledger.on_wire(device, {"message_id": mid, "from": sender, "to": to,
                                "content": content})
    if event:
        ledger.on_event(device, mid, sender, to, content)


def _complete(ledger: Ledger) -> Ledger:
    for device in ("b1", "a2"):
        _deliver(ledger, device, 10, "a1|0")
        _deliver(ledger, device, 11, "a1|1")
    return ledger


def _problems(ledger: Ledger) -> str:
    with pytest.raises(LedgerError) as caught:
        ledger.check()
    return "\n".join(caught.value.problems)


def test_a_correct_run_passes_with_its_figures():
    fig = _complete(_run()).check()
    assert (fig.sent, fig.acked, fig.expected_deliveries, fig.delivered) == (2, 2, 4, 4)
    assert (fig.lost, fig.duplicated, fig.out_of_order, fig.phantom) == (0, 0, 0, 0)


def test_a_redelivery_on_a_later_connection_is_counted_not_refused():
    ledger = _complete(_run())
    ledger.connected("b1")
    _deliver(ledger, "b1", 11, "a1|1", event=False)  # resent after a reconnect; SDK drops it
    assert ledger.check().redelivered == 1


def test_an_acknowledged_message_never_delivered_is_lost():
    ledger = _run()
    _deliver(ledger, "a2", 10, "a1|0")
    _deliver(ledger, "a2", 11, "a1|1")
    _deliver(ledger, "b1", 10, "a1|0")
    assert "acknowledged message 11 'a1|1' never delivered" in _problems(ledger)


def test_the_senders_other_device_must_get_a_copy():
    ledger = _run()
    for mid, content in ((10, "a1|0"), (11, "a1|1")):
        _deliver(ledger, "b1", mid, content)
    assert "a2: acknowledged message 10" in _problems(ledger)


def test_a_duplicate_from_the_sdk_is_caught():
    ledger = _complete(_run())
    ledger.on_event("b1", 11, ALICE, BOB, "a1|1")
    assert "b1: message 11 yielded 2 times" in _problems(ledger)


def test_a_duplicate_on_one_connection_is_caught_even_if_the_sdk_hides_it():
    ledger = _complete(_run())
    _deliver(ledger, "b1", 11, "a1|1", event=False)
    assert "b1 connection 1: id 11 sent after 11" in _problems(ledger)


def test_reordering_is_caught_on_the_wire_and_in_events():
    ledger = _run()
    _deliver(ledger, "a2", 10, "a1|0")
    _deliver(ledger, "a2", 11, "a1|1")
    _deliver(ledger, "b1", 11, "a1|1")
    _deliver(ledger, "b1", 10, "a1|0")
    problems = _problems(ledger)
    assert "b1 connection 1: id 10 sent after 11" in problems
    assert "b1: id 10 yielded after 11" in problems


def test_conversation_order_follows_the_senders_order():
    # Stored with ids in the opposite order of sending: ids rise, the conversation does not.
    ledger = Ledger()
    for name, user in (("a1", ALICE), ("b1", BOB)):
        ledger.add_device(name, user)
        ledger.connected(name)
    ledger.send("a1", BOB).message_id = 11
    ledger.send("a1", BOB).message_id = 10
    _deliver(ledger, "b1", 10, "a1|1")
    _deliver(ledger, "b1", 11, "a1|0")
    assert "'a1|0' arrived after a later message" in _problems(ledger)


def test_a_message_never_sent_is_a_phantom():
    ledger = _complete(_run())
    _deliver(ledger, "b1", 12, "forged")
    assert "message 12 'forged' from 1 to 2 was never sent" in _problems(ledger)


def test_a_message_under_another_id_than_its_ack_is_caught():
    ledger = _run()
    for device in ("b1", "a2"):
        _deliver(ledger, device, 10, "a1|0")
        _deliver(ledger, device, 12, "a1|1")
    assert "'a1|1' arrived as id 12, acknowledged as 11" in _problems(ledger)


def test_a_message_for_someone_else_is_caught():
    ledger = _complete(_run())
    ledger.add_device("c1", 3)
    ledger.connected("c1")
    _deliver(ledger, "c1", 10, "a1|0")
    assert "c1 event: 'a1|0' is not for this device" in _problems(ledger)


def test_an_sdk_that_drops_what_came_on_the_wire_is_caught():
    ledger = _complete(_run())
    ledger.send("a1", BOB)  # never acknowledged, but stored and pushed
    _deliver(ledger, "b1", 12, "a1|2", event=False)
    assert "dropped [12] that did" in _problems(ledger)


def test_an_unacknowledged_message_may_arrive_once_and_is_counted():
    ledger = _complete(_run())
    ledger.send("a1", BOB)  # the ack was lost in a crash
    _deliver(ledger, "b1", 12, "a1|2")
    _deliver(ledger, "a2", 12, "a1|2")
    assert ledger.check().unacked_delivered == 1


def test_two_messages_acknowledged_with_one_id_are_caught():
    ledger = _complete(_run())
    ledger.send("a2", BOB).message_id = 11
    assert "id 11 acknowledged for both" in _problems(ledger)

