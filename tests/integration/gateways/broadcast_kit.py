"""What the broadcast tests share: an audience of customers made through CustomerService (a
custom field, a static group), a BroadcastClient for the tenant's admin, and waits on a
broadcast's progress through BroadcastService."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from usher.client import BroadcastClient, CustomerClient
from usher.v1 import broadcast_service_pb2 as bpb
from usher.v1 import customer_pb2 as cpb
from usher.v1 import customer_service_pb2 as cspb

from tests.integration.gateways.kit import TENANT, Core, eventually

CITIES = ("Kowloon", "Sha Tin", "Tsuen Wan", "Central", "Mong Kok", "Tai Po")


@dataclass(frozen=True, slots=True)
class Person:
    customer_id: str
    name: str
    phone: str
    city: str


def person(i: int) -> Person:
    return Person(f"c{i:03d}", f"Customer {i}", f"+8526{i:07d}", CITIES[i % len(CITIES)])


@dataclass
class Audience:
    broadcasts: BroadcastClient
    customers: CustomerClient
    people: list[Person]


async def audience(core: Core, count: int, group: str = "vip") -> Audience:
    """``count`` customers with a phone and a ``city`` field, all in static group ``group``."""
    token = await core.running.token(TENANT, "admin")
    customers = CustomerClient(core.target, token)
    broadcasts = BroadcastClient(core.target, token)
    await customers.create_custom_field(
        cspb.CreateCustomFieldRequest(
            field_id="city",
            field=cpb.CustomField(
                display_name="City", type=cpb.CUSTOM_FIELD_TYPE_TEXT, enabled=True
            ),
        )
    )
    people = [person(i) for i in range(count)]
    for p in people:
        await customers.create_customer(
            cspb.CreateCustomerRequest(
                customer_id=p.customer_id,
                customer=cpb.Customer(
                    display_name=p.name,
                    phone=p.phone,
                    fields={"city": cpb.CustomFieldValue(string_value=p.city)},
                ),
            )
        )
    await customers.create_customer_group(
        cspb.CreateCustomerGroupRequest(group_id=group, group=cpb.CustomerGroup(display_name="VIP"))
    )
    for start in range(0, count, 500):
        await customers.add_customer_group_members(
            cspb.AddCustomerGroupMembersRequest(
                group=f"customerGroups/{group}",
                customers=[f"customers/{p.customer_id}" for p in people[start : start + 500]],
            )
        )
    return Audience(broadcasts, customers, people)


async def create(
    client: BroadcastClient,
    broadcast_id: str,
    channel: str,
    *,
    text: str = "",
    template: bpb.WhatsAppTemplateContent | None = None,
    link: str = "",
    groups: Sequence[str] = ("vip",),
) -> bpb.Broadcast:
    created = await client.create_broadcast(
        bpb.CreateBroadcastRequest(
            broadcast_id=broadcast_id,
            broadcast=bpb.Broadcast(
                display_name=broadcast_id,
                channel=f"channels/{channel}",
                content=bpb.BroadcastContent(text=text, whatsapp_template=template, link=link),
                audience=bpb.BroadcastAudience(groups=[f"customerGroups/{g}" for g in groups]),
            ),
        )
    )
    return created.broadcast


async def get(client: BroadcastClient, broadcast_id: str) -> bpb.Broadcast:
    found = await client.get_broadcast(bpb.GetBroadcastRequest(name=f"broadcasts/{broadcast_id}"))
    return found.broadcast


async def finished(client: BroadcastClient, broadcast_id: str) -> bpb.Broadcast:
    """The broadcast once it completed (or was cancelled)."""

    async def done() -> bpb.Broadcast | None:
        found = await get(client, broadcast_id)
        ended = (bpb.BROADCAST_STATE_COMPLETED, bpb.BROADCAST_STATE_CANCELLED)
        return found if found.state in ended else None

    result: bpb.Broadcast = await eventually(done, timeout=120.0)
    return result


async def recipients(client: BroadcastClient, broadcast_id: str) -> list[bpb.BroadcastRecipient]:
    found: list[bpb.BroadcastRecipient] = []
    token = ""
    while True:
        page = await client.list_broadcast_recipients(
            bpb.ListBroadcastRecipientsRequest(
                parent=f"broadcasts/{broadcast_id}", page_size=500, page_token=token
            )
        )
        found.extend(page.recipients)
        token = page.next_page_token
        if not token:
            return found
