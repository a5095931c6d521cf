"""The native wire protocol of Tidings, sans I/O: type, error and close codes
(:mod:`~tidings_client.protocol.codes`), payload structs
(:mod:`~tidings_client.protocol.messages`) and the envelope codec
(:mod:`~tidings_client.protocol.codec`). The server imports these same modules: they
are the one definition of the wire format (docs/protocol.md is its prose reference)."""
