"""Thin async clients for Usher's gRPC services, over ``grpc.aio``.

One client per audience, each taking a target (``host:port``) and a bearer token::

    async with AgentClient("usher.example.com:443", token, tls=True) as agent:
        await agent.set_status(SetStatusRequest(status=AGENT_STATUS_ONLINE))
        async for event in agent.events():
            ...

Calls take and return the generated ``usher.v1`` messages, have a default deadline, and are
retried with backoff only when idempotent (reads, and writes carrying an idempotency key).
Feeds reconnect and resume from the last event id. Failures raise ``UsherError`` subclasses
(``NotFound``, ``FailedPrecondition``...) carrying the server's ``google.rpc.Status`` details.
"""

from usher.client._retry import RetryPolicy
from usher.client._stream import EventStream
from usher.client.admin import AdminClient
from usher.client.agent import AgentClient
from usher.client.auth import AuthClient
from usher.client.blocklist import BlocklistClient
from usher.client.bots import BotClient
from usher.client.broadcasts import BroadcastClient
from usher.client.canned_replies import CannedReplyClient
from usher.client.customers import CustomerClient
from usher.client.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    UsherError,
)
from usher.client.follow_up import FollowUpClient
from usher.client.gateway import GatewayClient
from usher.client.knowledge import KnowledgeClient
from usher.client.qr_codes import QrCodeClient
from usher.client.quotas import QuotaClient
from usher.client.records import RecordClient
from usher.client.reports import ReportClient
from usher.client.supervisor import SupervisorClient
from usher.client.team_chat import TeamChatClient

__all__ = [
    "Aborted",
    "AdminClient",
    "AgentClient",
    "AlreadyExists",
    "AuthClient",
    "BlocklistClient",
    "BotClient",
    "BroadcastClient",
    "Cancelled",
    "CannedReplyClient",
    "CustomerClient",
    "DataLoss",
    "DeadlineExceeded",
    "EventStream",
    "FailedPrecondition",
    "FollowUpClient",
    "GatewayClient",
    "Internal",
    "InvalidArgument",
    "KnowledgeClient",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "QrCodeClient",
    "QuotaClient",
    "RecordClient",
    "ReportClient",
    "ResourceExhausted",
    "RetryPolicy",
    "SupervisorClient",
    "TeamChatClient",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "UsherError",
]
