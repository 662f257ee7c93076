"""``AdminClient``: AdminService, for configuring the caller's tenant (an ADMIN credential)."""

from __future__ import annotations

from functools import cached_property

from usher.client._base import BaseClient
from usher.v1 import admin_service_pb2 as pb
from usher.v1 import admin_service_pb2_grpc as pb_grpc


class AdminClient(BaseClient):
    """Agents, queues, skills, departments, tenant settings, API credentials and channels (AIP
    standard methods). Methods take the generated request message and return the generated response.
    Retried on transient errors: the Get and List methods.
    """

    @cached_property
    def _stub(self) -> pb_grpc.AdminServiceAsyncStub:
        return pb_grpc.AdminServiceStub(self.channel)

    async def get_agent(
        self, request: pb.GetAgentRequest, *, timeout: float | None = None
    ) -> pb.GetAgentResponse:
        return await self._call(self._stub.GetAgent, request, idempotent=True, timeout=timeout)

    async def list_agents(
        self, request: pb.ListAgentsRequest, *, timeout: float | None = None
    ) -> pb.ListAgentsResponse:
        return await self._call(self._stub.ListAgents, request, idempotent=True, timeout=timeout)

    async def create_agent(
        self, request: pb.CreateAgentRequest, *, timeout: float | None = None
    ) -> pb.CreateAgentResponse:
        return await self._call(self._stub.CreateAgent, request, idempotent=False, timeout=timeout)

    async def update_agent(
        self, request: pb.UpdateAgentRequest, *, timeout: float | None = None
    ) -> pb.UpdateAgentResponse:
        return await self._call(self._stub.UpdateAgent, request, idempotent=False, timeout=timeout)

    async def delete_agent(
        self, request: pb.DeleteAgentRequest, *, timeout: float | None = None
    ) -> pb.DeleteAgentResponse:
        return await self._call(self._stub.DeleteAgent, request, idempotent=False, timeout=timeout)

    async def get_queue(
        self, request: pb.GetQueueRequest, *, timeout: float | None = None
    ) -> pb.GetQueueResponse:
        return await self._call(self._stub.GetQueue, request, idempotent=True, timeout=timeout)

    async def list_queues(
        self, request: pb.ListQueuesRequest, *, timeout: float | None = None
    ) -> pb.ListQueuesResponse:
        return await self._call(self._stub.ListQueues, request, idempotent=True, timeout=timeout)

    async def create_queue(
        self, request: pb.CreateQueueRequest, *, timeout: float | None = None
    ) -> pb.CreateQueueResponse:
        return await self._call(self._stub.CreateQueue, request, idempotent=False, timeout=timeout)

    async def update_queue(
        self, request: pb.UpdateQueueRequest, *, timeout: float | None = None
    ) -> pb.UpdateQueueResponse:
        return await self._call(self._stub.UpdateQueue, request, idempotent=False, timeout=timeout)

    async def delete_queue(
        self, request: pb.DeleteQueueRequest, *, timeout: float | None = None
    ) -> pb.DeleteQueueResponse:
        return await self._call(self._stub.DeleteQueue, request, idempotent=False, timeout=timeout)

    async def get_skill(
        self, request: pb.GetSkillRequest, *, timeout: float | None = None
    ) -> pb.GetSkillResponse:
        return await self._call(self._stub.GetSkill, request, idempotent=True, timeout=timeout)

    async def list_skills(
        self, request: pb.ListSkillsRequest, *, timeout: float | None = None
    ) -> pb.ListSkillsResponse:
        return await self._call(self._stub.ListSkills, request, idempotent=True, timeout=timeout)

    async def create_skill(
        self, request: pb.CreateSkillRequest, *, timeout: float | None = None
    ) -> pb.CreateSkillResponse:
        return await self._call(self._stub.CreateSkill, request, idempotent=False, timeout=timeout)

    async def update_skill(
        self, request: pb.UpdateSkillRequest, *, timeout: float | None = None
    ) -> pb.UpdateSkillResponse:
        return await self._call(self._stub.UpdateSkill, request, idempotent=False, timeout=timeout)

    async def delete_skill(
        self, request: pb.DeleteSkillRequest, *, timeout: float | None = None
    ) -> pb.DeleteSkillResponse:
        return await self._call(self._stub.DeleteSkill, request, idempotent=False, timeout=timeout)

    async def get_department(
        self, request: pb.GetDepartmentRequest, *, timeout: float | None = None
    ) -> pb.GetDepartmentResponse:
        return await self._call(self._stub.GetDepartment, request, idempotent=True, timeout=timeout)

    async def list_departments(
        self, request: pb.ListDepartmentsRequest, *, timeout: float | None = None
    ) -> pb.ListDepartmentsResponse:
        return await self._call(
            self._stub.ListDepartments, request, idempotent=True, timeout=timeout
        )

    async def create_department(
        self, request: pb.CreateDepartmentRequest, *, timeout: float | None = None
    ) -> pb.CreateDepartmentResponse:
        return await self._call(
            self._stub.CreateDepartment, request, idempotent=False, timeout=timeout
        )

    async def update_department(
        self, request: pb.UpdateDepartmentRequest, *, timeout: float | None = None
    ) -> pb.UpdateDepartmentResponse:
        return await self._call(
            self._stub.UpdateDepartment, request, idempotent=False, timeout=timeout
        )

    async def delete_department(
        self, request: pb.DeleteDepartmentRequest, *, timeout: float | None = None
    ) -> pb.DeleteDepartmentResponse:
        return await self._call(
            self._stub.DeleteDepartment, request, idempotent=False, timeout=timeout
        )

    async def get_tenant_settings(
        self, request: pb.GetTenantSettingsRequest, *, timeout: float | None = None
    ) -> pb.GetTenantSettingsResponse:
        return await self._call(
            self._stub.GetTenantSettings, request, idempotent=True, timeout=timeout
        )

    async def update_tenant_settings(
        self, request: pb.UpdateTenantSettingsRequest, *, timeout: float | None = None
    ) -> pb.UpdateTenantSettingsResponse:
        return await self._call(
            self._stub.UpdateTenantSettings, request, idempotent=False, timeout=timeout
        )

    async def create_credential(
        self, request: pb.CreateCredentialRequest, *, timeout: float | None = None
    ) -> pb.CreateCredentialResponse:
        return await self._call(
            self._stub.CreateCredential, request, idempotent=False, timeout=timeout
        )

    async def list_credentials(
        self, request: pb.ListCredentialsRequest, *, timeout: float | None = None
    ) -> pb.ListCredentialsResponse:
        return await self._call(
            self._stub.ListCredentials, request, idempotent=True, timeout=timeout
        )

    async def revoke_credential(
        self, request: pb.RevokeCredentialRequest, *, timeout: float | None = None
    ) -> pb.RevokeCredentialResponse:
        return await self._call(
            self._stub.RevokeCredential, request, idempotent=False, timeout=timeout
        )

    async def set_agent_password(
        self, request: pb.SetAgentPasswordRequest, *, timeout: float | None = None
    ) -> pb.SetAgentPasswordResponse:
        """Setting the same password again changes nothing but the hash's salt: retried."""
        return await self._call(
            self._stub.SetAgentPassword, request, idempotent=True, timeout=timeout
        )

    async def get_channel(
        self, request: pb.GetChannelRequest, *, timeout: float | None = None
    ) -> pb.GetChannelResponse:
        return await self._call(self._stub.GetChannel, request, idempotent=True, timeout=timeout)

    async def list_channels(
        self, request: pb.ListChannelsRequest, *, timeout: float | None = None
    ) -> pb.ListChannelsResponse:
        return await self._call(self._stub.ListChannels, request, idempotent=True, timeout=timeout)

    async def create_channel(
        self, request: pb.CreateChannelRequest, *, timeout: float | None = None
    ) -> pb.CreateChannelResponse:
        return await self._call(
            self._stub.CreateChannel, request, idempotent=False, timeout=timeout
        )

    async def update_channel(
        self, request: pb.UpdateChannelRequest, *, timeout: float | None = None
    ) -> pb.UpdateChannelResponse:
        return await self._call(
            self._stub.UpdateChannel, request, idempotent=False, timeout=timeout
        )

    async def delete_channel(
        self, request: pb.DeleteChannelRequest, *, timeout: float | None = None
    ) -> pb.DeleteChannelResponse:
        return await self._call(
            self._stub.DeleteChannel, request, idempotent=False, timeout=timeout
        )
