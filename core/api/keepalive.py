"""HTTP/2 keepalive of the front door: find dead peers, and let live clients ping.

A client whose process froze or whose network vanished never closes its connection, so its
streams would stay open (and keep their feed subscriptions) until something was written to
them. The server pings every connection after ``time`` seconds without traffic and closes it
when no answer comes within ``timeout``; its calls then end like any cancelled call. Client
pings (the Python SDK sends them, see ``usher.client._channels``) are welcome down to
``min_client_interval`` seconds apart, with or without calls in flight; faster ones are
refused by gRPC's ping-abuse policy (GOAWAY ``too_many_pings``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keepalive:
    time: float = 30.0
    """Seconds without traffic on a connection before the server pings it."""
    timeout: float = 10.0
    """Seconds the server waits for the ping's answer before closing the connection."""
    min_client_interval: float = 10.0
    """The shortest interval between client pings the server accepts."""

    def __post_init__(self) -> None:
        if min(self.time, self.timeout, self.min_client_interval) <= 0:
            raise ValueError("keepalive intervals must be positive")

    def server_options(self) -> list[tuple[str, int]]:
        """The ``grpc.aio.server`` options that apply these settings."""
        return [
            ("grpc.keepalive_time_ms", _ms(self.time)),
            ("grpc.keepalive_timeout_ms", _ms(self.timeout)),
            # gRPC's ping timeout (60 s by default) applies to keepalive pings too
            ("grpc.http2.ping_timeout_ms", _ms(self.timeout)),
            # keep pinging streams that carry no data (idle agents' event streams)
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", _ms(self.min_client_interval)),
        ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
