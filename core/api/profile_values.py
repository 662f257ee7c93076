"""The engine's ``CustomerProfile`` as the ``usher.v1.CustomerProfile`` proto. No I/O."""

from __future__ import annotations

from usher.v1 import conversation_pb2, routing_pb2
from usher.v1 import customer_profile_pb2 as pb

from core.api import convert as cv
from core.routing import model as m


def profile_to_proto(profile: m.CustomerProfile) -> pb.CustomerProfile:
    out = pb.CustomerProfile(
        customer=f"customers/{profile.customer_id}" if profile.customer_id else "",
        display_name=profile.display_name,
        fields=[
            pb.CustomerProfileField(key=f.key, label=f.label, value=f.value) for f in profile.fields
        ],
        tags=list(profile.tags),
        groups=[
            pb.CustomerProfileGroup(group=f"customerGroups/{g.group_id}", display_name=g.name)
            for g in profile.groups
        ],
        previous_conversations=profile.previous_conversations,
        last_agent=cv.agent_name(profile.last_agent or None),
    )
    block = profile.block
    if block is not None:
        out.block.block = f"blocks/{block.block_id}"
        out.block.reason = block.reason
        expires = cv.timestamp(block.until)
        if expires is not None:
            out.block.expire_time.CopyFrom(expires)
    return out


def set_profile(
    out: conversation_pb2.Conversation | routing_pb2.Offer, profile: m.CustomerProfile | None
) -> None:
    """Fill ``out.customer_profile`` when there is a profile."""
    if profile is not None:
        out.customer_profile.CopyFrom(profile_to_proto(profile))
