"""Broadcasts' pure parts: content and its variables (``content``), recipients' addresses
(``addresses``), uploaded recipient files (``recipient_file``) and opt-out keywords (``stop``).
No I/O here: the store (``core.store.broadcast*``) and the gateways use them."""
