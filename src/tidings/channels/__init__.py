"""Channels: the publish/subscribe broker of seed 003 (M-SYNC).

A channel is an ordered log kept in the store (``store/channels.py``);
:class:`~tidings.channels.broker.Broker` publishes into it through group commit
and the bus, :class:`~tidings.channels.router.ChannelRouter` delivers to this
node's subscribers (replay, then live, with no gap and no duplicate), and
``namespaces.py`` holds the per-prefix rules.
"""
