"""Who is on the other end of a call: the client's address and user agent, for the logs people
read (the sign-in log, agents' status sessions).

A call over the network names its peer (``ipv4:10.0.0.7:51234``). A call relayed by the web
port (``core.api.connect_bridge``) arrives over this process's local socket, and the bridge
names the browser's address and user agent in metadata (``x-usher-client-address``,
``x-usher-user-agent``). That metadata is believed only on a call over the local socket: a
client on the network could send it too.
"""

from __future__ import annotations

from typing import Any, Final

import grpc

from core.api.convert import peer_address
from core.store.sign_in_log import Client

CLIENT_ADDRESS: Final = "x-usher-client-address"
"""Metadata naming the browser's IP address on a call the web port relayed."""
USER_AGENT: Final = "x-usher-user-agent"
"""Metadata naming the browser's user agent on a call the web port relayed."""
_LOCAL: Final = ("unix:", "unix-abstract:")


def _metadata(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    for entry_key, value in context.invocation_metadata() or ():
        if entry_key == key:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return ""


def relayed(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    """Whether the call came over this process's local socket (the web port's relay)."""
    return (context.peer() or "").startswith(_LOCAL)


def client_address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The client's IP address: the browser's for a relayed call, else the peer's ("" when
    neither names one)."""
    if relayed(context):
        return _metadata(context, CLIENT_ADDRESS)
    return peer_address(context.peer() or "")


def client_of(context: grpc.aio.ServicerContext[Any, Any]) -> Client:
    """The client's address and user agent (a browser's through the web port; a gRPC client's
    own ``user-agent`` otherwise)."""
    agent = _metadata(context, USER_AGENT) if relayed(context) else ""
    return Client(client_address(context), agent or _metadata(context, "user-agent"))
