"""CustomerService over real gRPC and PostgreSQL, through the SDK: customers with identities,
custom fields validated on every write, the recycle bin, merging, groups, visibility, import
(dry run, all or nothing, idempotent) and export, and usage against limits. Refusals change
nothing; tenants are isolated."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator

import asyncpg
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from openpyxl import Workbook, load_workbook
from usher.client import (
    AlreadyExists,
    BlocklistClient,
    CustomerClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from usher.v1 import blocklist_service_pb2 as bl
from usher.v1 import customer_pb2 as cpb
from usher.v1 import customer_service_pb2 as pb

from core.store import quotas
from core.store.customer_records import purge_deleted, retention_period
from core.store.customers import Customers
from tests.integration.api_kit import Running, running


@pytest.fixture
async def api(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Running]:
    async with running(pool, redis_url, with_core=True) as r:
        yield r


@pytest.fixture
async def sup(api: Running) -> AsyncIterator[CustomerClient]:
    async with CustomerClient(api.target, await api.token("acme", "supervisor")) as client:
        yield client


async def client(api: Running, tenant: str, role: str, agent: str | None = None) -> CustomerClient:
    return CustomerClient(api.target, await api.token(tenant, role, agent))


def text(value: str) -> cpb.CustomFieldValue:
    return cpb.CustomFieldValue(string_value=value)


def violations(exc: InvalidArgument | AlreadyExists) -> dict[str, str]:
    bad = exc.detail(error_details_pb2.BadRequest)
    assert bad is not None
    return {v.field: v.description for v in bad.field_violations}


async def define_fields(c: CustomerClient) -> None:
    F = cpb.CustomField
    for key, field in (
        ("vip_no", F(type=cpb.CUSTOM_FIELD_TYPE_TEXT, unique=True, enabled=True)),
        ("spend", F(type=cpb.CUSTOM_FIELD_TYPE_NUMBER, enabled=True, display_order=2)),
        ("birthday", F(type=cpb.CUSTOM_FIELD_TYPE_DATE, enabled=True)),
        (
            "plan",
            F(type=cpb.CUSTOM_FIELD_TYPE_SINGLE_CHOICE, enabled=True, choices=["gold", "basic"]),
        ),
        (
            "likes",
            F(type=cpb.CUSTOM_FIELD_TYPE_MULTIPLE_CHOICE, enabled=True, choices=["tea", "cake"]),
        ),
        ("opt_in", F(type=cpb.CUSTOM_FIELD_TYPE_BOOLEAN, enabled=True)),
    ):
        await c.create_custom_field(pb.CreateCustomFieldRequest(field_id=key, field=field))


async def create(c: CustomerClient, **kw: object) -> cpb.Customer:
    response = await c.create_customer(pb.CreateCustomerRequest(customer=cpb.Customer(**kw)))  # type: ignore[arg-type]
    return response.customer


async def count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM customers"))


# --- customers ---------------------------------------------------------------------------------


async def test_create_get_update_and_search(api: Running, sup: CustomerClient) -> None:
    await define_fields(sup)
    ann = await create(
        sup,
        display_name="陳大文 Ann",
        phone="+85291234567",
        email="Ann@Example.com",
        company="Acme 有限公司",
        address="1 Queen's Road",
        language="zh-Hant-HK",
        region="hk",
        avatar_uri="https://cdn.example.com/a.png",
        tags=["vip"],
        fields={"vip_no": text("V1"), "spend": cpb.CustomFieldValue(number_value=12.5)},
    )
    assert ann.name.startswith("customers/") and ann.visibility == cpb.VISIBILITY_PUBLIC
    got = (await sup.get_customer(pb.GetCustomerRequest(name=ann.name))).customer
    assert got == ann and got.fields["spend"].number_value == 12.5
    bob = await create(sup, display_name="Bob", phone="+66812345678", language="th", tags=["x"])

    updated = await sup.update_customer(
        pb.UpdateCustomerRequest(
            customer=cpb.Customer(name=ann.name, company="Beta", fields={"plan": text("gold")}),
            update_mask=field_mask_pb2.FieldMask(paths=["company", "fields.plan"]),
        )
    )
    assert updated.customer.company == "Beta"
    assert updated.customer.display_name == "陳大文 Ann"  # not in the mask: kept
    assert set(updated.customer.fields) == {"vip_no", "spend", "plan"}

    async def names(**f: object) -> list[str]:
        page = await sup.list_customers(pb.ListCustomersRequest(filter=cpb.CustomerFilter(**f)))  # type: ignore[arg-type]
        return [c.display_name for c in page.customers]

    assert await names(query="大文") == ["陳大文 Ann"]
    assert await names(email="ann@example.COM") == ["陳大文 Ann"]
    assert await names(phone="+66812345678") == ["Bob"]
    assert await names(language="th", tags=["x"]) == ["Bob"]
    assert await names(language="th", tags=["vip"]) == []
    assert await names(company="bet", region="hk") == ["陳大文 Ann"]
    assert sorted(await names()) == ["Bob", "陳大文 Ann"]
    assert bob.name

    # keyset paging covers every customer once
    for i in range(5):
        await create(sup, display_name=f"p{i}")
    seen, token = [], ""
    while True:
        page = await sup.list_customers(pb.ListCustomersRequest(page_size=2, page_token=token))
        seen += [c.name for c in page.customers]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 7


async def test_identities_from_gateways_show_on_the_customer(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    customer_id = await Customers(pool).resolve("acme", "whatsapp", "85291234567", name="Wa")
    got = (await sup.get_customer(pb.GetCustomerRequest(name=f"customers/{customer_id}"))).customer
    assert got.display_name == "Wa"
    assert [(i.channel, i.external_id) for i in got.identities] == [("whatsapp", "85291234567")]


async def test_bad_values_are_refused_and_change_nothing(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    await define_fields(sup)
    await create(sup, display_name="A", fields={"vip_no": text("V1")})
    before = await count(pool)
    cases = [
        ({"nope": text("x")}, "customer.fields.nope"),
        ({"spend": text("lots")}, "customer.fields.spend"),
        ({"birthday": text("2026-02-30")}, "customer.fields.birthday"),
        ({"plan": text("platinum")}, "customer.fields.plan"),
    ]
    for values, field in cases:
        with pytest.raises(InvalidArgument) as bad:
            await create(sup, display_name="B", fields=values)
        assert field in violations(bad.value)
    with pytest.raises(InvalidArgument) as bad:
        await create(sup, phone="85291234567")
    assert "customer.phone" in violations(bad.value)
    with pytest.raises(AlreadyExists) as taken:
        await create(sup, display_name="C", fields={"vip_no": text("V1")})
    assert "customer.fields.vip_no" in violations(taken.value)
    assert await count(pool) == before

    # required fields and disabled fields
    await sup.update_custom_field(
        pb.UpdateCustomFieldRequest(
            field=cpb.CustomField(name="customFields/plan", required=True),
            update_mask=field_mask_pb2.FieldMask(paths=["required"]),
        )
    )
    with pytest.raises(InvalidArgument) as bad:
        await create(sup, display_name="D")
    assert "customer.fields.plan" in violations(bad.value)
    with pytest.raises(InvalidArgument):  # type and uniqueness never change
        await sup.update_custom_field(
            pb.UpdateCustomFieldRequest(
                field=cpb.CustomField(name="customFields/plan", unique=True),
                update_mask=field_mask_pb2.FieldMask(paths=["unique"]),
            )
        )
    with pytest.raises(AlreadyExists):
        await sup.create_custom_field(
            pb.CreateCustomFieldRequest(
                field_id="plan", field=cpb.CustomField(type=cpb.CUSTOM_FIELD_TYPE_TEXT)
            )
        )
    fields = await sup.list_custom_fields(pb.ListCustomFieldsRequest(page_size=4))
    more = await sup.list_custom_fields(
        pb.ListCustomFieldsRequest(page_token=fields.next_page_token)
    )
    assert len(fields.fields) + len(more.fields) == 6 and not more.next_page_token
    with pytest.raises(InvalidArgument) as bad:
        await sup.create_custom_field(
            pb.CreateCustomFieldRequest(
                field_id="phone", field=cpb.CustomField(type=cpb.CUSTOM_FIELD_TYPE_TEXT)
            )
        )
    assert "field_id" in violations(bad.value)
    assert await count(pool) == before


async def test_tenants_are_isolated(api: Running, sup: CustomerClient) -> None:
    ann = await create(sup, display_name="Ann")
    async with await client(api, "globex", "supervisor") as other:
        with pytest.raises(NotFound) as missing:
            await other.get_customer(pb.GetCustomerRequest(name=ann.name))
        info = missing.value.detail(error_details_pb2.ResourceInfo)
        assert info is not None and info.resource_name == ann.name
        with pytest.raises(NotFound):
            await other.merge_customers(
                pb.MergeCustomersRequest(customer=ann.name, merged=[ann.name.replace("s/", "s/x")])
            )
        await other.create_customer_group(pb.CreateCustomerGroupRequest(group_id="g"))
        with pytest.raises(NotFound):
            await other.add_customer_group_members(
                pb.AddCustomerGroupMembersRequest(group="customerGroups/g", customers=[ann.name])
            )
        assert not (await other.list_customers(pb.ListCustomersRequest())).customers


# --- recycle bin and merging --------------------------------------------------------------------


async def test_recycle_bin_restore_and_purge(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    ann = await create(sup, display_name="Ann")
    deleted = (await sup.delete_customer(pb.DeleteCustomerRequest(name=ann.name))).customer
    assert deleted.HasField("delete_time")
    with pytest.raises(NotFound):
        await sup.get_customer(pb.GetCustomerRequest(name=ann.name))
    binned = await sup.list_customers(
        pb.ListCustomersRequest(filter=cpb.CustomerFilter(deleted=True))
    )
    assert [c.name for c in binned.customers] == [ann.name]
    assert not (await sup.list_customers(pb.ListCustomersRequest())).customers
    restored = (await sup.undelete_customer(pb.UndeleteCustomerRequest(name=ann.name))).customer
    assert not restored.HasField("delete_time")
    with pytest.raises(NotFound):  # not in the bin
        await sup.undelete_customer(pb.UndeleteCustomerRequest(name=ann.name))

    await sup.delete_customer(pb.DeleteCustomerRequest(name=ann.name))
    assert retention_period({}) == dt.timedelta(days=30)
    assert retention_period({"USHER_CUSTOMER_RETENTION_DAYS": "7"}) == dt.timedelta(days=7)
    assert await purge_deleted(pool) == 0  # deleted just now: within the retention period
    assert await purge_deleted(pool, older_than=dt.timedelta(0)) == 1
    with pytest.raises(NotFound):
        await sup.undelete_customer(pb.UndeleteCustomerRequest(name=ann.name))


async def test_merge_moves_identities_notes_tags_and_reads_follow(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    await define_fields(sup)
    wa = await Customers(pool).resolve("acme", "whatsapp", "85291234567", name="Wa")
    line = await Customers(pool).resolve("acme", "line", "U123", name="Line")
    await sup.update_customer(
        pb.UpdateCustomerRequest(
            customer=cpb.Customer(
                name=f"customers/{line}", tags=["line"], fields={"vip_no": text("V9")}
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["tags", "fields"]),
        )
    )
    await sup.add_customer_note(pb.AddCustomerNoteRequest(parent=f"customers/{line}", text="hi"))
    await sup.create_customer_group(pb.CreateCustomerGroupRequest(group_id="g"))
    await sup.add_customer_group_members(
        pb.AddCustomerGroupMembersRequest(group="customerGroups/g", customers=[f"customers/{line}"])
    )
    with pytest.raises(InvalidArgument):
        await sup.merge_customers(
            pb.MergeCustomersRequest(customer=f"customers/{wa}", merged=[f"customers/{wa}"])
        )
    merged = (
        await sup.merge_customers(
            pb.MergeCustomersRequest(customer=f"customers/{wa}", merged=[f"customers/{line}"])
        )
    ).customer
    assert {(i.channel, i.external_id) for i in merged.identities} == {
        ("whatsapp", "85291234567"),
        ("line", "U123"),
    }
    assert list(merged.tags) == ["line"] and merged.fields["vip_no"].string_value == "V9"
    assert list(merged.groups) == ["customerGroups/g"]
    notes = await sup.list_customer_notes(pb.ListCustomerNotesRequest(parent=merged.name))
    assert [n.text for n in notes.notes] == ["hi"]
    # the merged id (conversations still name it) reads as the survivor
    followed = (await sup.get_customer(pb.GetCustomerRequest(name=f"customers/{line}"))).customer
    assert followed.name == f"customers/{wa}"
    assert [c.name for c in (await sup.list_customers(pb.ListCustomersRequest())).customers] == [
        f"customers/{wa}"
    ]
    # the gateways resolve the moved identity to the survivor
    assert await Customers(pool).resolve("acme", "line", "U123") == wa


# --- groups, visibility, usage ---------------------------------------------------------------


async def test_groups_and_members(api: Running, sup: CustomerClient) -> None:
    ann, bob = await create(sup, display_name="Ann"), await create(sup, display_name="Bob")
    group = (
        await sup.create_customer_group(
            pb.CreateCustomerGroupRequest(
                group_id="vip", group=cpb.CustomerGroup(display_name="VIP")
            )
        )
    ).group
    assert group.name == "customerGroups/vip" and group.member_count == 0
    with pytest.raises(AlreadyExists):
        await sup.create_customer_group(pb.CreateCustomerGroupRequest(group_id="vip"))
    with pytest.raises(NotFound):  # one unknown customer: nobody is added
        await sup.add_customer_group_members(
            pb.AddCustomerGroupMembersRequest(
                group=group.name, customers=[ann.name, "customers/zz"]
            )
        )
    added = await sup.add_customer_group_members(
        pb.AddCustomerGroupMembersRequest(group=group.name, customers=[ann.name, bob.name])
    )
    assert added.group.member_count == 2
    members = await sup.list_customers(
        pb.ListCustomersRequest(filter=cpb.CustomerFilter(group=group.name))
    )
    assert {c.name for c in members.customers} == {ann.name, bob.name}
    removed = await sup.remove_customer_group_members(
        pb.RemoveCustomerGroupMembersRequest(group=group.name, customers=[bob.name])
    )
    assert removed.group.member_count == 1
    await sup.create_customer_group(pb.CreateCustomerGroupRequest(group_id="new"))
    first = await sup.list_customer_groups(pb.ListCustomerGroupsRequest(page_size=1))
    rest = await sup.list_customer_groups(
        pb.ListCustomerGroupsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [g.name for g in (*first.groups, *rest.groups)] == [
        "customerGroups/new",
        "customerGroups/vip",
    ]
    assert not rest.next_page_token
    await sup.delete_customer_group(pb.DeleteCustomerGroupRequest(name="customerGroups/new"))
    await sup.delete_customer_group(pb.DeleteCustomerGroupRequest(name=group.name))
    assert not (await sup.list_customer_groups(pb.ListCustomerGroupsRequest())).groups
    with pytest.raises(NotFound):
        await sup.delete_customer_group(pb.DeleteCustomerGroupRequest(name=group.name))


async def test_agents_see_and_edit_by_visibility(api: Running, sup: CustomerClient) -> None:
    public = await create(sup, display_name="Public")
    shared = await create(
        sup, display_name="Shared", owner="agents/bob", visibility=cpb.VISIBILITY_SHARED
    )
    mine = await create(
        sup, display_name="Mine", owner="agents/ann", visibility=cpb.VISIBILITY_PRIVATE
    )
    theirs = await create(
        sup, display_name="Theirs", owner="agents/bob", visibility=cpb.VISIBILITY_PRIVATE
    )
    async with await client(api, "acme", "agent", "ann") as ann:
        listed = await ann.list_customers(pb.ListCustomersRequest())
        assert {c.display_name for c in listed.customers} == {"Public", "Shared", "Mine"}
        with pytest.raises(NotFound):
            await ann.get_customer(pb.GetCustomerRequest(name=theirs.name))
        rename = field_mask_pb2.FieldMask(paths=["display_name"])
        for editable in (public, mine):
            await ann.update_customer(
                pb.UpdateCustomerRequest(
                    customer=cpb.Customer(name=editable.name, display_name="edited"),
                    update_mask=rename,
                )
            )
        with pytest.raises(PermissionDenied):
            await ann.update_customer(
                pb.UpdateCustomerRequest(
                    customer=cpb.Customer(name=shared.name, display_name="x"), update_mask=rename
                )
            )
        with pytest.raises(NotFound):
            await ann.update_customer(
                pb.UpdateCustomerRequest(
                    customer=cpb.Customer(name=theirs.name, display_name="x"), update_mask=rename
                )
            )
        with pytest.raises(PermissionDenied):
            await ann.update_customer(
                pb.UpdateCustomerRequest(
                    customer=cpb.Customer(name=public.name, owner="agents/ann"),
                    update_mask=field_mask_pb2.FieldMask(paths=["owner"]),
                )
            )
        with pytest.raises(PermissionDenied):
            await ann.delete_customer(pb.DeleteCustomerRequest(name=public.name))
    got = (await sup.get_customer(pb.GetCustomerRequest(name=shared.name))).customer
    assert got.display_name == "Shared"


async def test_usage_and_limits(api: Running, sup: CustomerClient, pool: asyncpg.Pool) -> None:
    usage = await sup.get_usage(pb.GetUsageRequest())
    assert usage.customers.unlimited and usage.groups.unlimited
    await create(sup, display_name="A")
    await quotas.set_limit(pool, "acme", "customers", 2)
    await quotas.set_limit(pool, "acme", "customer_groups", 0)
    await create(sup, display_name="B")
    with pytest.raises(ResourceExhausted) as full:
        await create(sup, display_name="C")
    quota = full.value.detail(error_details_pb2.QuotaFailure)
    assert quota is not None and quota.violations[0].subject == "tenant:customers"
    with pytest.raises(ResourceExhausted):
        await sup.create_customer_group(pb.CreateCustomerGroupRequest(group_id="g"))
    with pytest.raises(ResourceExhausted):  # an import past the limit writes nothing
        await sup.import_customers(
            pb.ImportCustomersRequest(
                content=b"external_id,display_name\ne1,X\n", format=pb.FILE_FORMAT_CSV
            )
        )
    usage = await sup.get_usage(pb.GetUsageRequest())
    assert (usage.customers.used, usage.customers.limit, usage.customers.unlimited) == (2, 2, False)
    assert (usage.groups.used, usage.groups.limit) == (0, 0)
    assert await count(pool) == 2


# --- import and export ---------------------------------------------------------------------------


def csv_file(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


async def test_import_dry_run_all_or_nothing_and_idempotent(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    await define_fields(sup)
    header = ["external_id", "display_name", "phone", "tags", "vip_no", "spend", "likes"]
    good = [
        header,
        ["e1", "Ann", "+85291234567", "a;b", "V1", "10", "tea;cake"],
        ["e2", "Bob", "", "", "V2", "", ""],
    ]
    bad = [
        *good,
        ["e3", "Cat", "12345", "", "V1", "many", "coffee"],
        ["e1", "Dup", "", "", "", "", ""],
    ]

    dry = await sup.import_customers(
        pb.ImportCustomersRequest(content=csv_file(bad), format=pb.FILE_FORMAT_CSV, dry_run=True)
    )
    assert not dry.committed and dry.rows == 4
    problems = {p.row: dict(p.problems) for p in dry.problems}
    assert set(problems) == {4, 5}
    assert {"phone", "fields.spend", "fields.likes"} <= set(problems[4])
    assert "external_id" in problems[5]
    assert await count(pool) == 0

    with pytest.raises(InvalidArgument) as refused:
        await sup.import_customers(
            pb.ImportCustomersRequest(content=csv_file(bad), format=pb.FILE_FORMAT_CSV)
        )
    assert "rows[4].phone" in violations(refused.value)
    assert await count(pool) == 0

    done = await sup.import_customers(
        pb.ImportCustomersRequest(content=csv_file(good), format=pb.FILE_FORMAT_CSV)
    )
    assert (done.committed, done.created, done.updated, done.unchanged) == (True, 2, 0, 0)
    stamps = await pool.fetch("SELECT customer_id, updated_at FROM customers ORDER BY 1")
    again = await sup.import_customers(
        pb.ImportCustomersRequest(content=csv_file(good), format=pb.FILE_FORMAT_CSV)
    )
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert await pool.fetch("SELECT customer_id, updated_at FROM customers ORDER BY 1") == stamps

    found = await sup.list_customers(
        pb.ListCustomersRequest(filter=cpb.CustomerFilter(external_id="e1"))
    )
    ann = found.customers[0]
    assert list(ann.tags) == ["a", "b"] and list(ann.fields["likes"].list_value.values) == [
        "tea",
        "cake",
    ]
    # a unique value another customer holds, by the vip_no key, updates by that key
    update = await sup.import_customers(
        pb.ImportCustomersRequest(
            content=csv_file([["vip_no", "company"], ["V2", "Globex"]]),
            format=pb.FILE_FORMAT_CSV,
            key=pb.IMPORT_KEY_CUSTOM_FIELD,
            key_field="customFields/vip_no",
        )
    )
    assert (update.created, update.updated) == (0, 1)
    with pytest.raises(AlreadyExists):
        await create(sup, display_name="X", external_id="e1")


async def test_import_refuses_malformed_and_oversize_files(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    cases = [
        (b"PK\x03\x04 not a zip", pb.FILE_FORMAT_XLSX),
        (b"\xff\xfe\x00bad", pb.FILE_FORMAT_CSV),
        (b"external_id,colour\ne1,red\n", pb.FILE_FORMAT_CSV),  # unknown column
        (b"display_name\nAnn\n", pb.FILE_FORMAT_CSV),  # no key column
        (b"external_id" + b"," * 400 + b"x\n", pb.FILE_FORMAT_CSV),  # too many columns
    ]
    for content, fmt in cases:
        with pytest.raises(InvalidArgument) as bad:
            await sup.import_customers(pb.ImportCustomersRequest(content=content, format=fmt))
        assert "content" in violations(bad.value)
    with pytest.raises(InvalidArgument) as big:
        await sup.import_customers(
            pb.ImportCustomersRequest(
                content=b"external_id\n" + b"x\n" * (3 * 1024 * 1024 // 2),
                format=pb.FILE_FORMAT_CSV,
            )
        )
    assert "content" in violations(big.value)
    with pytest.raises(InvalidArgument):
        await sup.import_customers(pb.ImportCustomersRequest(content=b"external_id\ne\n"))
    assert await count(pool) == 0


async def test_xlsx_template_import_and_export_round_trip(
    api: Running, sup: CustomerClient
) -> None:
    await define_fields(sup)
    template = await sup.get_import_template(
        pb.GetImportTemplateRequest(format=pb.FILE_FORMAT_XLSX)
    )
    header = [c.value for c in next(load_workbook(io.BytesIO(template.content)).active.iter_rows())]  # type: ignore[union-attr]
    assert header[:3] == ["external_id", "display_name", "phone"] and "vip_no" in header
    csv_template = await sup.get_import_template(
        pb.GetImportTemplateRequest(format=pb.FILE_FORMAT_CSV)
    )
    assert csv_template.content.decode("utf-8-sig").startswith("external_id,display_name")

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["external_id", "display_name", "spend", "opt_in", "birthday"])
    sheet.append(["x1", "สมชาย", 42, True, "1990-01-31"])
    sheet.append(["x2", "王小明", 7.5, False, None])
    out = io.BytesIO()
    book.save(out)
    done = await sup.import_customers(
        pb.ImportCustomersRequest(content=out.getvalue(), format=pb.FILE_FORMAT_XLSX)
    )
    assert (done.created, done.committed) == (2, True)

    chunks = [
        c async for c in sup.export_customers(pb.ExportCustomersRequest(format=pb.FILE_FORMAT_CSV))
    ]
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert {(r["external_id"], r["display_name"], r["spend"], r["opt_in"]) for r in rows} == {
        ("x1", "สมชาย", "42", "true"),
        ("x2", "王小明", "7.5", "false"),
    }
    xlsx = b"".join(
        [
            c
            async for c in sup.export_customers(
                pb.ExportCustomersRequest(
                    format=pb.FILE_FORMAT_XLSX, filter=cpb.CustomerFilter(query="สมชาย")
                )
            )
        ]
    )
    exported = list(load_workbook(io.BytesIO(xlsx)).active.iter_rows(values_only=True))  # type: ignore[union-attr]
    assert len(exported) == 2 and exported[1][1] == "สมชาย"
    # the export imports back unchanged
    again = await sup.import_customers(
        pb.ImportCustomersRequest(content=b"".join(chunks), format=pb.FILE_FORMAT_CSV)
    )
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


async def test_import_by_email_or_phone_key(
    api: Running, sup: CustomerClient, pool: asyncpg.Pool
) -> None:
    await create(sup, display_name="Ann", email="ann@example.com", phone="+85291234567")
    await create(sup, display_name="Twin 1", phone="+85299999999")
    await create(sup, display_name="Twin 2", phone="+85299999999")
    by_email = await sup.import_customers(
        pb.ImportCustomersRequest(
            content=csv_file(
                [["email", "company"], ["ANN@example.com", "Acme"], ["new@x.org", "N"]]
            ),
            format=pb.FILE_FORMAT_CSV,
            key=pb.IMPORT_KEY_EMAIL,
        )
    )
    assert (by_email.created, by_email.updated) == (1, 1)
    found = await sup.list_customers(
        pb.ListCustomersRequest(filter=cpb.CustomerFilter(email="ann@example.com"))
    )
    assert [(c.display_name, c.company) for c in found.customers] == [("Ann", "Acme")]
    before = await count(pool)
    with pytest.raises(InvalidArgument) as ambiguous:
        await sup.import_customers(
            pb.ImportCustomersRequest(
                content=csv_file([["phone", "company"], ["+85299999999", "X"]]),
                format=pb.FILE_FORMAT_CSV,
                key=pb.IMPORT_KEY_PHONE,
            )
        )
    assert "rows[2].phone" in violations(ambiguous.value)
    assert await count(pool) == before


async def test_a_customers_standing_block_shows_on_get_and_list(
    api: Running, sup: CustomerClient
) -> None:
    ann = await create(sup, display_name="Ann")
    bob = await create(sup, display_name="Bob", phone="+85291234567")
    cat = await create(sup, display_name="Cat", email="Cat@Example.com")
    dan = await create(sup, display_name="Dan")
    eve = await create(sup, display_name="Eve")
    until = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=7)
    async with BlocklistClient(api.target, await api.token("acme", "supervisor")) as blocks:

        async def block(**target: object) -> bl.Block:
            request = bl.CreateBlockRequest(block=bl.Block(**target))  # type: ignore[arg-type]
            return (await blocks.create_block(request)).block

        on_ann = await block(customer=ann.name, reason="abusive", expire_time=until)
        on_bob = await block(phone="+85291234567", reason="spam")
        on_cat = await block(email="cat@example.com", reason="fraud")
        on_dan = await block(customer=dan.name, reason="a mistake")
        await blocks.unblock(bl.UnblockRequest(name=on_dan.name))

    got = (await sup.get_customer(pb.GetCustomerRequest(name=ann.name))).customer
    assert got.HasField("block")
    assert (got.block.block, got.block.reason) == (on_ann.name, "abusive")
    assert got.block.expire_time.ToDatetime(dt.UTC) == until
    assert got.block.create_time == on_ann.create_time
    unblocked = (await sup.get_customer(pb.GetCustomerRequest(name=dan.name))).customer
    assert not unblocked.HasField("block")

    listed = (await sup.list_customers(pb.ListCustomersRequest())).customers
    shown = {
        c.name: (c.block.block, c.block.reason) if c.HasField("block") else None for c in listed
    }
    assert shown == {
        ann.name: (on_ann.name, "abusive"),
        bob.name: (on_bob.name, "spam"),
        cat.name: (on_cat.name, "fraud"),
        dan.name: None,
        eve.name: None,
    }
    assert not next(c for c in listed if c.name == bob.name).block.HasField("expire_time")
