"""The server API's node side (issue 21): what each node does for an operator —
list, disconnect and unsubscribe its connections on every transport, report channel
presence and subscriber counts — and the scatter-gather over the bus that makes those
answers cluster-wide (``cluster.py``), the HTTP routes (``routes.py``, ``users.py``) and
the audit log of every admin action (``audit.py``)."""
