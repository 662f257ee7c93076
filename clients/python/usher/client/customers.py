"""``CustomerClient``: CustomerService, the tenant's customer database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cached_property

import grpc

from usher.client._base import BaseClient
from usher.client.errors import from_rpc_error
from usher.v1 import customer_service_pb2 as pb
from usher.v1 import customer_service_pb2_grpc as pb_grpc


class CustomerClient(BaseClient):
    """Customers, custom fields, groups, notes, import and export, usage.

    Methods take the generated request message and return the generated response. Reads
    (Get, List, GetImportTemplate, GetUsage) are retried on transient errors; writes are not.
    Limits are the installation's (``usher admin quota set``); ``QuotaClient`` reads them all.
    ``export_customers`` yields the file's bytes chunk by chunk.
    """

    @cached_property
    def _stub(self) -> pb_grpc.CustomerServiceAsyncStub:
        return pb_grpc.CustomerServiceStub(self.channel)

    async def create_customer(
        self, request: pb.CreateCustomerRequest, *, timeout: float | None = None
    ) -> pb.CreateCustomerResponse:
        return await self._call(
            self._stub.CreateCustomer, request, idempotent=False, timeout=timeout
        )

    async def get_customer(
        self, request: pb.GetCustomerRequest, *, timeout: float | None = None
    ) -> pb.GetCustomerResponse:
        return await self._call(self._stub.GetCustomer, request, idempotent=True, timeout=timeout)

    async def update_customer(
        self, request: pb.UpdateCustomerRequest, *, timeout: float | None = None
    ) -> pb.UpdateCustomerResponse:
        return await self._call(
            self._stub.UpdateCustomer, request, idempotent=False, timeout=timeout
        )

    async def delete_customer(
        self, request: pb.DeleteCustomerRequest, *, timeout: float | None = None
    ) -> pb.DeleteCustomerResponse:
        return await self._call(
            self._stub.DeleteCustomer, request, idempotent=False, timeout=timeout
        )

    async def undelete_customer(
        self, request: pb.UndeleteCustomerRequest, *, timeout: float | None = None
    ) -> pb.UndeleteCustomerResponse:
        return await self._call(
            self._stub.UndeleteCustomer, request, idempotent=False, timeout=timeout
        )

    async def list_customers(
        self, request: pb.ListCustomersRequest, *, timeout: float | None = None
    ) -> pb.ListCustomersResponse:
        return await self._call(self._stub.ListCustomers, request, idempotent=True, timeout=timeout)

    async def merge_customers(
        self, request: pb.MergeCustomersRequest, *, timeout: float | None = None
    ) -> pb.MergeCustomersResponse:
        return await self._call(
            self._stub.MergeCustomers, request, idempotent=False, timeout=timeout
        )

    async def add_customer_note(
        self, request: pb.AddCustomerNoteRequest, *, timeout: float | None = None
    ) -> pb.AddCustomerNoteResponse:
        return await self._call(
            self._stub.AddCustomerNote, request, idempotent=False, timeout=timeout
        )

    async def list_customer_notes(
        self, request: pb.ListCustomerNotesRequest, *, timeout: float | None = None
    ) -> pb.ListCustomerNotesResponse:
        return await self._call(
            self._stub.ListCustomerNotes, request, idempotent=True, timeout=timeout
        )

    async def create_custom_field(
        self, request: pb.CreateCustomFieldRequest, *, timeout: float | None = None
    ) -> pb.CreateCustomFieldResponse:
        return await self._call(
            self._stub.CreateCustomField, request, idempotent=False, timeout=timeout
        )

    async def list_custom_fields(
        self, request: pb.ListCustomFieldsRequest, *, timeout: float | None = None
    ) -> pb.ListCustomFieldsResponse:
        return await self._call(
            self._stub.ListCustomFields, request, idempotent=True, timeout=timeout
        )

    async def update_custom_field(
        self, request: pb.UpdateCustomFieldRequest, *, timeout: float | None = None
    ) -> pb.UpdateCustomFieldResponse:
        return await self._call(
            self._stub.UpdateCustomField, request, idempotent=False, timeout=timeout
        )

    async def delete_custom_field(
        self, request: pb.DeleteCustomFieldRequest, *, timeout: float | None = None
    ) -> pb.DeleteCustomFieldResponse:
        return await self._call(
            self._stub.DeleteCustomField, request, idempotent=False, timeout=timeout
        )

    async def create_customer_group(
        self, request: pb.CreateCustomerGroupRequest, *, timeout: float | None = None
    ) -> pb.CreateCustomerGroupResponse:
        return await self._call(
            self._stub.CreateCustomerGroup, request, idempotent=False, timeout=timeout
        )

    async def list_customer_groups(
        self, request: pb.ListCustomerGroupsRequest, *, timeout: float | None = None
    ) -> pb.ListCustomerGroupsResponse:
        return await self._call(
            self._stub.ListCustomerGroups, request, idempotent=True, timeout=timeout
        )

    async def delete_customer_group(
        self, request: pb.DeleteCustomerGroupRequest, *, timeout: float | None = None
    ) -> pb.DeleteCustomerGroupResponse:
        return await self._call(
            self._stub.DeleteCustomerGroup, request, idempotent=False, timeout=timeout
        )

    async def add_customer_group_members(
        self, request: pb.AddCustomerGroupMembersRequest, *, timeout: float | None = None
    ) -> pb.AddCustomerGroupMembersResponse:
        return await self._call(
            self._stub.AddCustomerGroupMembers, request, idempotent=False, timeout=timeout
        )

    async def remove_customer_group_members(
        self, request: pb.RemoveCustomerGroupMembersRequest, *, timeout: float | None = None
    ) -> pb.RemoveCustomerGroupMembersResponse:
        return await self._call(
            self._stub.RemoveCustomerGroupMembers, request, idempotent=False, timeout=timeout
        )

    async def import_customers(
        self, request: pb.ImportCustomersRequest, *, timeout: float | None = None
    ) -> pb.ImportCustomersResponse:
        return await self._call(
            self._stub.ImportCustomers, request, idempotent=False, timeout=timeout
        )

    async def get_import_template(
        self, request: pb.GetImportTemplateRequest, *, timeout: float | None = None
    ) -> pb.GetImportTemplateResponse:
        return await self._call(
            self._stub.GetImportTemplate, request, idempotent=True, timeout=timeout
        )

    async def export_customers(
        self, request: pb.ExportCustomersRequest, *, timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """The export file's bytes, chunk by chunk (not resumed after a failure: start over)."""
        call = self._stub.ExportCustomers(request, timeout=timeout, metadata=self._metadata)
        try:
            async for response in call:
                yield response.chunk
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    async def get_usage(
        self, request: pb.GetUsageRequest, *, timeout: float | None = None
    ) -> pb.GetUsageResponse:
        return await self._call(self._stub.GetUsage, request, idempotent=True, timeout=timeout)
