"""The limits of every ``usher.v1`` request field, declared once (``LIMITS``), with defaults by
type for any field not declared (``default_limit``), so a new field is bounded from the start.

Every request is checked against them before its servicer runs (``core.api.validation.walk``,
installed by ``core.api.validation.edge.Limits``); a refusal is INVALID_ARGUMENT with one
``BadRequest`` field violation per bad field (``message.attachments[3].uri``).

What every field gets, whatever its declaration:

- strings: valid UTF-8 without NUL; at most ``DEFAULT_MAX_LEN`` (256) characters unless declared;
  a declared ``form`` (resource name, id, BCP 47 tag, E.164, e-mail...) applies when non-empty;
- repeated fields and maps: at most ``DEFAULT_MAX_ITEMS`` (100) entries unless declared, every
  entry checked (a map's keys and values by the entry's ``key``/``value`` declarations);
- integers: within [-1,000,000, 1,000,000] unless declared; doubles: finite, within the same
  range unless declared;
- enums: one of the values the proto defines (UNSPECIFIED included: servicers read it as the
  documented default or refuse it themselves);
- ``Timestamp``: 1970-01-01 to 2199-12-31, nanos 0..999,999,999;
- ``Duration``: 0 to ``DEFAULT_MAX_DURATION`` (366 days) unless declared, nanos in range and of
  the seconds' sign;
- ``FieldMask``: at most 50 paths, each a ``snake_case`` field path.

Whether a field is required, and checks that need state (does the queue exist, is the level
within the tenant's rules), stay with the servicers and the engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from core.api.validation import forms as f
from core.qr.targets import LINE_ID
from core.store.validation import MAX_CONTENT, MAX_PROVIDER_ID

DEFAULT_MAX_LEN: Final = 256
DEFAULT_MAX_ITEMS: Final = 100
DEFAULT_LOW: Final = -1_000_000
DEFAULT_HIGH: Final = 1_000_000
DAY: Final = 86_400
DEFAULT_MAX_DURATION: Final = 366 * DAY
EARLIEST_TIME: Final = 0
"""1970-01-01T00:00:00Z."""
LATEST_TIME: Final = 7_258_118_399
"""2199-12-31T23:59:59Z."""
MAX_FIELD_MASK_PATHS: Final = 50
MAX_INT64: Final = 2**63 - 1

MAX_ATTACHMENTS: Final = 20
MAX_NOTE_ATTACHMENTS: Final = 10
"""Files on one note (a conversation's or a customer's; core.store.note_files)."""
MAX_TAGS: Final = 50
MAX_TAG_LENGTH: Final = 100
MAX_NOTE: Final = 10_000
MAX_REQUEST_ID: Final = MAX_PROVIDER_ID - len("request:")
"""A request id is stored as the key ``request:{id}``, which must fit a provider id's column."""
MAX_PAGE_SIZE: Final = 500
MAX_PRIORITY: Final = 1_000
MAX_CAPACITY: Final = 1_000
MAX_DISPLAY_NAME: Final = 200
MAX_CUSTOMER_IMPORT_BYTES: Final = 3 * 1024 * 1024
MAX_OPTIONS: Final = 10
"""Options of a message's choices (``MessageChoices``); channels with fewer native slots
degrade (WhatsApp: more than 3 become a list)."""
MAX_OPTION_TITLE: Final = 100
"""A generic cap: channels with shorter labels shorten titles themselves."""
MAX_OPTION_DESCRIPTION: Final = 200
MAX_CHOICES_LINE: Final = 200
"""A choices' header, footer; the list button's label is shorter (``MAX_CHOICES_BUTTON``)."""
MAX_CHOICES_BUTTON: Final = 40
"""An import file (CustomerService.ImportCustomers), under the server's 4 MiB message limit."""
MAX_PASSWORD: Final = 128
"""A console password (``core.store.passwords``)."""
MAX_TEAM_MEMBERS: Final = 50
MAX_TEAM_MESSAGE: Final = 4_000
"""A team chat group's members and a team message's text (``core.store.team_chat``)."""


@dataclass(frozen=True, slots=True)
class Limit:
    """What one field may hold; only the facets of its type apply, ``None`` meaning the type's
    default. For a repeated field the text and number facets apply to each entry."""

    max_len: int | None = None
    """Characters of a string."""
    min_len: int = 0
    form: f.Form | None = None
    """The syntax of a non-empty string."""
    max_items: int | None = None
    """Entries of a repeated field or a map."""
    low: float | None = None
    high: float | None = None
    """Bounds of a number, of a duration (seconds) or a timestamp (seconds since the epoch)."""


def _name(collection: str) -> Limit:
    return Limit(max_len=len(collection) + 65, form=f.resource(collection))


def _names(collection: str, items: int) -> Limit:
    return Limit(max_len=len(collection) + 65, form=f.resource(collection), max_items=items)


ID: Final = Limit(max_len=64, form=f.ID)
DISPLAY_NAME: Final = Limit(max_len=MAX_DISPLAY_NAME, form=f.LINE)
PAGE_SIZE: Final = Limit(low=0, high=MAX_PAGE_SIZE)
PAGE_TOKEN: Final = Limit(max_len=512)
TAGS: Final = Limit(max_len=MAX_TAG_LENGTH, min_len=1, max_items=MAX_TAGS)
PRIORITY: Final = Limit(low=-MAX_PRIORITY, high=MAX_PRIORITY)
LANGUAGE: Final = Limit(max_len=35, form=f.LANGUAGE)
REGION: Final = Limit(max_len=64, form=f.ID)
MESSAGE_TEXT: Final = Limit(max_len=MAX_CONTENT)
ATTACHMENTS: Final = Limit(max_items=MAX_ATTACHMENTS)
EVENT_ID: Final = Limit(low=0, high=MAX_INT64)
NOTE: Final = Limit(max_len=MAX_NOTE)
SKILL_LEVEL: Final = Limit(low=0, high=10)
CONVERSATION: Final = _name("conversations")
BOT_STEP: Final = Limit(max_len=64, form=f.ID)
"""A bot step's id, or a reference to one (empty where the step allows it)."""
BOT_TEXT: Final = Limit(max_len=4_096)


BROADCAST_RECIPIENT: Final = f.Form(
    "a broadcasts/{b}/recipients/{n} name (n: a positive integer)",
    lambda text: (
        re.fullmatch(rf"broadcasts/{f.ID_PATTERN}/recipients/[1-9][0-9]{{0,8}}", text) is not None
    ),
)


def _seconds(high: float, low: float = 0) -> Limit:
    return Limit(low=low, high=high)


_P = "usher.v1."
VISIT_URL: Final = Limit(max_len=2048, form=f.LINE)
"""A web chat visitor's page or referrer URL (reports count them by path and host)."""

LIMITS: Final[Mapping[str, Limit]] = {
    # --- shared values -------------------------------------------------------------------------
    f"{_P}Attachment.sha256": Limit(max_len=64, form=f.SHA256),
    f"{_P}Attachment.name": Limit(max_len=255, form=f.LINE),
    f"{_P}Attachment.content_type": Limit(max_len=255, form=f.MEDIA_TYPE),
    f"{_P}Attachment.size": Limit(low=0, high=2**40),
    f"{_P}Attachment.uri": Limit(max_len=2048, form=f.URI),
    f"{_P}CustomerIdentity.external_id": Limit(max_len=200),
    f"{_P}CustomerIdentity.name": DISPLAY_NAME,
    f"{_P}CustomerIdentity.phone": Limit(max_len=16, form=f.PHONE),
    f"{_P}CustomerIdentity.email": Limit(max_len=320, form=f.EMAIL),
    f"{_P}CustomerMessage.text": MESSAGE_TEXT,
    f"{_P}CustomerMessage.attachments": ATTACHMENTS,
    f"{_P}CustomerMessage.provider_message_id": Limit(max_len=MAX_PROVIDER_ID),
    f"{_P}CustomerMessage.selected_option_id": ID,
    f"{_P}MessageChoices.options": Limit(max_items=MAX_OPTIONS),
    f"{_P}MessageChoices.button_text": Limit(max_len=MAX_CHOICES_BUTTON, form=f.LINE),
    f"{_P}MessageChoices.header": Limit(max_len=MAX_CHOICES_LINE, form=f.LINE),
    f"{_P}MessageChoices.footer": Limit(max_len=MAX_CHOICES_LINE, form=f.LINE),
    f"{_P}MessageOption.id": ID,
    f"{_P}MessageOption.title": Limit(max_len=MAX_OPTION_TITLE, form=f.LINE),
    f"{_P}MessageOption.description": Limit(max_len=MAX_OPTION_DESCRIPTION, form=f.LINE),
    f"{_P}ConversationOptions.queue": _name("queues"),
    f"{_P}ConversationOptions.region": REGION,
    f"{_P}ConversationOptions.language": LANGUAGE,
    f"{_P}ConversationOptions.priority": PRIORITY,
    f"{_P}ConversationOptions.tags": TAGS,
    f"{_P}ConversationOptions.reference": ID,
    f"{_P}ConversationOptions.page": VISIT_URL,
    f"{_P}ConversationOptions.referrer": VISIT_URL,
    # --- ConversationService -------------------------------------------------------------------
    f"{_P}StartConversationRequest.request_id": Limit(max_len=MAX_REQUEST_ID),
    f"{_P}StartConversationRequest.channel": ID,
    f"{_P}StartConversationRequest.queue": _name("queues"),
    f"{_P}StartConversationRequest.region": REGION,
    f"{_P}StartConversationRequest.language": LANGUAGE,
    f"{_P}StartConversationRequest.priority": PRIORITY,
    f"{_P}StartConversationRequest.tags": TAGS,
    f"{_P}StartConversationRequest.reference": ID,
    f"{_P}StartConversationRequest.page": VISIT_URL,
    f"{_P}StartConversationRequest.referrer": VISIT_URL,
    f"{_P}ReceiveCustomerMessageRequest.channel": ID,
    f"{_P}PostCustomerMessageRequest.conversation": CONVERSATION,
    f"{_P}PostCustomerMessageRequest.text": MESSAGE_TEXT,
    f"{_P}PostCustomerMessageRequest.attachments": ATTACHMENTS,
    f"{_P}PostCustomerMessageRequest.provider_message_id": Limit(max_len=MAX_PROVIDER_ID),
    f"{_P}PostCustomerMessageRequest.selected_option_id": ID,
    f"{_P}PostBotMessageRequest.request_id": Limit(max_len=MAX_REQUEST_ID),
    f"{_P}PostBotMessageRequest.conversation": CONVERSATION,
    f"{_P}PostBotMessageRequest.text": MESSAGE_TEXT,
    f"{_P}PostBotMessageRequest.attachments": ATTACHMENTS,
    f"{_P}RequestAgentRequest.conversation": CONVERSATION,
    f"{_P}RequestAgentRequest.queue": _name("queues"),
    f"{_P}RequestAgentRequest.priority": PRIORITY,
    f"{_P}LeaveConversationRequest.conversation": CONVERSATION,
    f"{_P}NotifyTypingRequest.conversation": CONVERSATION,
    f"{_P}MarkReadRequest.message": Limit(max_len=120, form=f.MESSAGE_NAME),
    f"{_P}RateConversationRequest.conversation": CONVERSATION,
    f"{_P}RateConversationRequest.score": Limit(low=1, high=5),
    f"{_P}RateConversationRequest.comment": Limit(max_len=2000),
    f"{_P}ListRatingsRequest.channel": ID,
    f"{_P}ListRatingsRequest.page_size": PAGE_SIZE,
    f"{_P}ListRatingsRequest.page_token": PAGE_TOKEN,
    f"{_P}StreamOutboundRequest.channel": ID,
    f"{_P}StreamOutboundRequest.resume_after_event_id": EVENT_ID,
    # --- AgentService --------------------------------------------------------------------------
    f"{_P}SetStatusRequest.custom_status": Limit(max_len=64, form=f.LINE),
    f"{_P}StreamEventsRequest.resume_after_event_id": EVENT_ID,
    f"{_P}AcceptOfferRequest.offer": _name("offers"),
    f"{_P}RejectOfferRequest.offer": _name("offers"),
    f"{_P}TakeConversationRequest.conversation": CONVERSATION,
    f"{_P}SendMessageRequest.request_id": Limit(max_len=MAX_REQUEST_ID),
    f"{_P}SendMessageRequest.conversation": CONVERSATION,
    f"{_P}SendMessageRequest.text": MESSAGE_TEXT,
    f"{_P}SendMessageRequest.attachments": ATTACHMENTS,
    f"{_P}SendMessageRequest.canned_reply_id": ID,
    f"{_P}RequestTransferRequest.conversation": CONVERSATION,
    f"{_P}RequestTransferRequest.agent": _name("agents"),
    f"{_P}RequestTransferRequest.queue": _name("queues"),
    f"{_P}RequestTransferRequest.department": _name("departments"),
    f"{_P}RequestTransferRequest.note": NOTE,
    f"{_P}AnswerTransferRequest.transfer": _name("transfers"),
    f"{_P}CancelTransferRequest.transfer": _name("transfers"),
    f"{_P}SetConversationModeRequest.conversation": CONVERSATION,
    f"{_P}EndConversationRequest.conversation": CONVERSATION,
    f"{_P}FinishWrapUpRequest.conversation": CONVERSATION,
    f"{_P}AddNoteRequest.conversation": CONVERSATION,
    f"{_P}AddNoteRequest.text": NOTE,
    f"{_P}AddNoteRequest.attachments": Limit(max_items=MAX_NOTE_ATTACHMENTS),
    f"{_P}ListNotesRequest.parent": CONVERSATION,
    f"{_P}ListNotesRequest.page_size": PAGE_SIZE,
    f"{_P}ListNotesRequest.page_token": PAGE_TOKEN,
    f"{_P}UpdateTagsRequest.conversation": CONVERSATION,
    f"{_P}UpdateTagsRequest.add_tags": TAGS,
    f"{_P}UpdateTagsRequest.remove_tags": TAGS,
    f"{_P}ListMyConversationsRequest.page_size": PAGE_SIZE,
    f"{_P}ListMyConversationsRequest.page_token": PAGE_TOKEN,
    f"{_P}ListMyConversationsRequest.states": Limit(max_items=16),
    f"{_P}GetConversationRequest.name": CONVERSATION,
    f"{_P}ListMessagesRequest.parent": CONVERSATION,
    f"{_P}ListMessagesRequest.page_size": PAGE_SIZE,
    f"{_P}ListMessagesRequest.page_token": PAGE_TOKEN,
    f"{_P}AgentServiceNotifyTypingRequest.conversation": CONVERSATION,
    f"{_P}AgentServiceMarkReadRequest.message": Limit(max_len=120, form=f.MESSAGE_NAME),
    # --- SupervisorService ---------------------------------------------------------------------
    f"{_P}StreamDashboardRequest.queues": _names("queues", 100),
    f"{_P}StreamDashboardRequest.min_interval": _seconds(3_600),
    f"{_P}MonitorConversationRequest.conversation": CONVERSATION,
    f"{_P}StopMonitoringRequest.conversation": CONVERSATION,
    f"{_P}StreamConversationRequest.conversation": CONVERSATION,
    f"{_P}StreamConversationRequest.resume_after_event_id": EVENT_ID,
    f"{_P}ForceAssignRequest.conversation": CONVERSATION,
    f"{_P}ForceAssignRequest.agent": _name("agents"),
    f"{_P}ExplainRoutingRequest.conversation": CONVERSATION,
    # --- AdminService: requests ----------------------------------------------------------------
    **{
        f"{_P}{verb}{kind}Request.name": _name(collection)
        for verb in ("Get", "Delete")
        for kind, collection in (
            ("Agent", "agents"),
            ("Queue", "queues"),
            ("Skill", "skills"),
            ("Department", "departments"),
            ("Channel", "channels"),
        )
    },
    f"{_P}RevokeCredentialRequest.name": _name("credentials"),
    **{
        f"{_P}List{kind}Request.{field}": limit
        for kind in ("Agents", "Queues", "Skills", "Departments", "Credentials", "Channels")
        for field, limit in (("page_size", PAGE_SIZE), ("page_token", PAGE_TOKEN))
    },
    **{
        f"{_P}Create{kind}Request.{kind.lower()}_id": ID
        for kind in ("Agent", "Queue", "Skill", "Department", "Channel")
    },
    # --- AdminService: resources ---------------------------------------------------------------
    f"{_P}Agent.name": _name("agents"),
    f"{_P}Agent.display_name": DISPLAY_NAME,
    f"{_P}Agent.skills": Limit(max_items=100),
    f"{_P}SkillLevel.skill": _name("skills"),
    f"{_P}SkillLevel.level": SKILL_LEVEL,
    f"{_P}Agent.capacity": Limit(low=0, high=MAX_CAPACITY),
    f"{_P}Agent.departments": _names("departments", 100),
    f"{_P}Agent.custom_status": Limit(max_len=64, form=f.LINE),
    f"{_P}Agent.load": Limit(low=0, high=MAX_CAPACITY * 10),
    f"{_P}Queue.name": _name("queues"),
    f"{_P}Queue.display_name": DISPLAY_NAME,
    f"{_P}Queue.requirements": Limit(max_items=50),
    f"{_P}SkillRequirement.skill": _name("skills"),
    f"{_P}SkillRequirement.min_level": SKILL_LEVEL,
    f"{_P}Queue.priority": PRIORITY,
    f"{_P}Queue.offer_timeout": _seconds(DAY),
    f"{_P}Queue.relaxation_steps": Limit(max_items=20),
    f"{_P}RelaxationStep.after": _seconds(30 * DAY),
    f"{_P}RelaxationStep.level_drop": SKILL_LEVEL,
    f"{_P}Queue.max_wait": _seconds(30 * DAY),
    f"{_P}Queue.overflow_queue": _name("queues"),
    f"{_P}BusinessHours.time_zone": Limit(max_len=64, form=f.TIME_ZONE),
    f"{_P}BusinessHours.weekly": Limit(max_items=7 * 4),
    f"{_P}BusinessHours.breaks": Limit(max_items=7 * 4),
    f"{_P}DayHours.ranges": Limit(max_items=24),
    f"{_P}TimeRange.start": Limit(max_len=5, form=f.TIME_OF_DAY),
    f"{_P}TimeRange.end": Limit(max_len=5, form=f.TIME_OF_DAY),
    f"{_P}BusinessHours.holidays": Limit(max_len=10, form=f.DATE, max_items=400),
    f"{_P}Queue.designated_agents": _names("agents", 1_000),
    f"{_P}Queue.designated_departments": _names("departments", 100),
    f"{_P}Queue.sticky_window": _seconds(366 * DAY),
    f"{_P}Queue.sticky_timeout": _seconds(DAY),
    f"{_P}Queue.service_level_threshold": _seconds(DAY),
    f"{_P}Skill.name": _name("skills"),
    f"{_P}Skill.display_name": DISPLAY_NAME,
    f"{_P}Department.name": _name("departments"),
    f"{_P}Department.display_name": DISPLAY_NAME,
    f"{_P}TenantSettings.name": Limit(max_len=64, form=f.LINE),
    f"{_P}TenantSettings.channel_weights": Limit(max_items=100),
    f"{_P}TenantSettings.ChannelWeightsEntry.key": ID,
    f"{_P}TenantSettings.ChannelWeightsEntry.value": Limit(low=0, high=1_000),
    f"{_P}TenantSettings.exclusive_channels": Limit(max_len=64, form=f.ID, max_items=100),
    f"{_P}TenantSettings.head_start": _seconds(DAY),
    f"{_P}TenantSettings.misses_before_away": Limit(low=0, high=1_000),
    f"{_P}TenantSettings.transfer_timeout": _seconds(DAY),
    f"{_P}TenantSettings.customer_idle_remind": _seconds(30 * DAY),
    f"{_P}TenantSettings.customer_idle_close": _seconds(30 * DAY),
    f"{_P}TenantSettings.agent_idle_notify": _seconds(DAY),
    f"{_P}TenantSettings.wrap_up": _seconds(DAY),
    f"{_P}TenantSettings.default_queue": _name("queues"),
    f"{_P}TenantSettings.region_queues": Limit(max_items=200),
    f"{_P}TenantSettings.RegionQueuesEntry.key": REGION,
    f"{_P}TenantSettings.RegionQueuesEntry.value": _name("queues"),
    f"{_P}TenantSettings.custom_statuses": Limit(max_items=50),
    f"{_P}CustomStatus.name": Limit(max_len=64, form=f.LINE),
    f"{_P}CustomStatus.auto_reply": Limit(max_len=4_096),
    f"{_P}TenantSettings.default_language": LANGUAGE,
    f"{_P}TenantSettings.system_messages": Limit(max_items=500),
    f"{_P}SystemMessageText.language": LANGUAGE,
    f"{_P}SystemMessageText.text": Limit(max_len=4_096),
    f"{_P}TenantSettings.closed_retention": _seconds(3_660 * DAY),
    f"{_P}TenantSettings.assumed_handle_time": _seconds(DAY),
    f"{_P}TenantSettings.time_zone": Limit(max_len=64, form=f.TIME_ZONE),
    f"{_P}Credential.name": _name("credentials"),
    f"{_P}Credential.agent": _name("agents"),
    f"{_P}Credential.display_name": DISPLAY_NAME,
    f"{_P}Channel.name": _name("channels"),
    f"{_P}Channel.display_name": DISPLAY_NAME,
    f"{_P}Channel.settings": Limit(max_items=50),
    f"{_P}Channel.SettingsEntry.key": Limit(max_len=64, form=f.LINE),
    f"{_P}Channel.SettingsEntry.value": Limit(max_len=4_096),
    f"{_P}Channel.secrets": Limit(max_items=50),
    f"{_P}Channel.SecretsEntry.key": Limit(max_len=64, form=f.LINE),
    f"{_P}Channel.SecretsEntry.value": Limit(max_len=4_096),
    # --- CustomerService -----------------------------------------------------------------------
    **{
        f"{_P}{verb}Request.name": _name("customers")
        for verb in ("GetCustomer", "DeleteCustomer", "UndeleteCustomer")
    },
    f"{_P}CreateCustomerRequest.customer_id": ID,
    f"{_P}Customer.name": _name("customers"),
    f"{_P}Customer.display_name": DISPLAY_NAME,
    f"{_P}Customer.phone": Limit(max_len=16, form=f.PHONE),
    f"{_P}Customer.email": Limit(max_len=320, form=f.EMAIL),
    f"{_P}Customer.company": DISPLAY_NAME,
    f"{_P}Customer.address": Limit(max_len=500),
    f"{_P}Customer.language": LANGUAGE,
    f"{_P}Customer.region": REGION,
    f"{_P}Customer.avatar_uri": Limit(max_len=2048, form=f.URI),
    f"{_P}Customer.external_id": Limit(max_len=200),
    f"{_P}Customer.tags": TAGS,
    f"{_P}Customer.fields": Limit(max_items=200),
    f"{_P}Customer.FieldsEntry.key": Limit(max_len=64),
    f"{_P}Customer.owner": _name("agents"),
    f"{_P}Customer.identities": Limit(max_items=1_000),
    f"{_P}Customer.groups": _names("customerGroups", 1_000),
    f"{_P}ChannelIdentity.external_id": Limit(max_len=200),
    f"{_P}CustomFieldValue.string_value": Limit(max_len=1_000),
    f"{_P}StringList.values": Limit(max_len=100, max_items=200),
    f"{_P}CustomerFilter.query": Limit(max_len=200),
    f"{_P}CustomerFilter.display_name": DISPLAY_NAME,
    f"{_P}CustomerFilter.phone": Limit(max_len=16, form=f.PHONE),
    f"{_P}CustomerFilter.email": Limit(max_len=320),
    f"{_P}CustomerFilter.company": DISPLAY_NAME,
    f"{_P}CustomerFilter.address": Limit(max_len=500),
    f"{_P}CustomerFilter.language": LANGUAGE,
    f"{_P}CustomerFilter.region": REGION,
    f"{_P}CustomerFilter.avatar_uri": Limit(max_len=2048),
    f"{_P}CustomerFilter.external_id": Limit(max_len=200),
    f"{_P}CustomerFilter.tags": TAGS,
    f"{_P}CustomerFilter.group": _name("customerGroups"),
    f"{_P}CustomerFilter.owner": _name("agents"),
    **{
        f"{_P}List{kind}Request.{field}": limit
        for kind in ("CustomFields", "CustomerGroups")
        for field, limit in (("page_size", PAGE_SIZE), ("page_token", PAGE_TOKEN))
    },
    f"{_P}ListCustomersRequest.page_size": PAGE_SIZE,
    f"{_P}ListCustomersRequest.page_token": PAGE_TOKEN,
    f"{_P}MergeCustomersRequest.customer": _name("customers"),
    f"{_P}MergeCustomersRequest.merged": _names("customers", 50),
    f"{_P}AddCustomerNoteRequest.parent": _name("customers"),
    f"{_P}AddCustomerNoteRequest.text": NOTE,
    f"{_P}AddCustomerNoteRequest.attachments": Limit(max_items=MAX_NOTE_ATTACHMENTS),
    f"{_P}ListCustomerNotesRequest.parent": _name("customers"),
    f"{_P}ListCustomerNotesRequest.page_size": PAGE_SIZE,
    f"{_P}ListCustomerNotesRequest.page_token": PAGE_TOKEN,
    f"{_P}CreateCustomFieldRequest.field_id": ID,
    f"{_P}CustomField.name": _name("customFields"),
    f"{_P}CustomField.display_name": DISPLAY_NAME,
    f"{_P}CustomField.choices": Limit(max_len=100, max_items=200),
    f"{_P}DeleteCustomFieldRequest.name": _name("customFields"),
    f"{_P}CreateCustomerGroupRequest.group_id": ID,
    f"{_P}CustomerGroup.name": _name("customerGroups"),
    f"{_P}CustomerGroup.display_name": DISPLAY_NAME,
    f"{_P}DeleteCustomerGroupRequest.name": _name("customerGroups"),
    f"{_P}AddCustomerGroupMembersRequest.group": _name("customerGroups"),
    f"{_P}AddCustomerGroupMembersRequest.customers": _names("customers", 500),
    f"{_P}RemoveCustomerGroupMembersRequest.group": _name("customerGroups"),
    f"{_P}RemoveCustomerGroupMembersRequest.customers": _names("customers", 500),
    f"{_P}ImportCustomersRequest.content": Limit(max_len=MAX_CUSTOMER_IMPORT_BYTES),
    f"{_P}ImportCustomersRequest.key_field": _name("customFields"),
    # --- BlocklistService (the values' syntax is the servicer's: core.store.blocklist) --------
    f"{_P}CustomerIdentity.ip_address": Limit(max_len=45),
    f"{_P}Block.customer": _name("customers"),
    f"{_P}Block.phone": Limit(max_len=16),
    f"{_P}Block.email": Limit(max_len=320),
    f"{_P}Block.ip_address": Limit(max_len=45),
    f"{_P}Block.reason": Limit(max_len=1000),
    f"{_P}CreateBlockRequest.ttl": _seconds(36_500 * DAY),
    f"{_P}CreateBlockRequest.conversation": CONVERSATION,
    f"{_P}GetBlockRequest.name": _name("blocks"),
    f"{_P}UnblockRequest.name": _name("blocks"),
    f"{_P}ListBlocksRequest.page_size": PAGE_SIZE,
    f"{_P}ListBlocksRequest.page_token": PAGE_TOKEN,
    f"{_P}ListBlocksRequest.customer": _name("customers"),
    f"{_P}ListBlocksRequest.phone": Limit(max_len=16),
    f"{_P}ListBlocksRequest.email": Limit(max_len=320),
    f"{_P}ListBlocksRequest.ip_address": Limit(max_len=45),
    f"{_P}WatchBlocksRequest.resume_after_event_id": EVENT_ID,
    # --- RecordService (the other fields keep the defaults by type) -------------------------
    f"{_P}ConversationFilter.queues": _names("queues", 100),
    f"{_P}ConversationFilter.owner": _name("agents"),
    f"{_P}ConversationFilter.customer_id": ID,
    f"{_P}ConversationFilter.departments": _names("departments", 20),
    f"{_P}PinConversationRequest.conversation": CONVERSATION,
    f"{_P}UnpinConversationRequest.conversation": CONVERSATION,
    f"{_P}GetConversationActivityRequest.conversation": CONVERSATION,
    f"{_P}ListCustomerConversationsRequest.customer": _name("customers"),
    f"{_P}CountConversationsRequest.departments": _names("departments", 20),
    f"{_P}WatchConversationListsRequest.lists": Limit(max_items=16),
    f"{_P}WatchConversationListsRequest.resume_after_event_id": EVENT_ID,
    f"{_P}WatchConversationListsRequest.departments": _names("departments", 20),
    # --- FollowUpService -----------------------------------------------------------------------
    f"{_P}ListLeftMessagesRequest.page_size": PAGE_SIZE,
    f"{_P}ListLeftMessagesRequest.page_token": PAGE_TOKEN,
    f"{_P}MarkLeftMessageHandledRequest.conversation": CONVERSATION,
    f"{_P}AnswerLeftMessageRequest.conversation": CONVERSATION,
    f"{_P}AnswerLeftMessageRequest.agent": _name("agents"),
    f"{_P}StartConversationWithCustomerRequest.request_id": Limit(max_len=MAX_REQUEST_ID),
    f"{_P}StartConversationWithCustomerRequest.customer": _name("customers"),
    f"{_P}StartConversationWithCustomerRequest.channel": ID,
    f"{_P}StartConversationWithCustomerRequest.queue": _name("queues"),
    f"{_P}StartConversationWithCustomerRequest.agent": _name("agents"),
    # --- ReportService (ranges and filters' ids are checked by core.reports) ------------------
    f"{_P}ReportFilter.queues": _names("queues", 100),
    f"{_P}ReportFilter.agents": _names("agents", 500),
    f"{_P}ReportFilter.channels": Limit(max_len=64, min_len=1, form=f.ID, max_items=50),
    f"{_P}ReportFilter.department": _name("departments"),
    f"{_P}ReportFilter.tag": Limit(max_len=MAX_TAG_LENGTH),
    f"{_P}ListAgentLoginsRequest.agents": _names("agents", 500),
    f"{_P}ListAgentLoginsRequest.department": _name("departments"),
    f"{_P}ListAgentLoginsRequest.page_size": PAGE_SIZE,
    f"{_P}ListAgentLoginsRequest.page_token": PAGE_TOKEN,
    f"{_P}GetVisitorReportRequest.channel": ID,
    # --- CannedReplyService (whole replies are checked by core.store.canned_replies) ---------
    f"{_P}CannedReplyCategory.name": _name("cannedReplyCategories"),
    f"{_P}CannedReplyCategory.owner": _name("agents"),
    f"{_P}CannedReplyCategory.display_name": DISPLAY_NAME,
    f"{_P}CreateCannedReplyCategoryRequest.canned_reply_category_id": ID,
    f"{_P}GetCannedReplyCategoryRequest.name": _name("cannedReplyCategories"),
    f"{_P}DeleteCannedReplyCategoryRequest.name": _name("cannedReplyCategories"),
    f"{_P}ListCannedReplyCategoriesRequest.page_size": PAGE_SIZE,
    f"{_P}ListCannedReplyCategoriesRequest.page_token": PAGE_TOKEN,
    f"{_P}ListCannedReplyCategoriesRequest.owner": _name("agents"),
    f"{_P}CannedReply.name": _name("cannedReplies"),
    f"{_P}CannedReply.owner": _name("agents"),
    f"{_P}CannedReply.category": _name("cannedReplyCategories"),
    f"{_P}CannedReply.shortcut": Limit(max_len=33),
    f"{_P}CannedReply.title": Limit(max_len=200, form=f.LINE),
    f"{_P}CannedReply.text": Limit(max_len=10_000),
    f"{_P}CannedReply.language": LANGUAGE,
    f"{_P}CannedReply.attachments": Limit(max_items=10),
    f"{_P}CannedReply.variables": Limit(max_len=200, max_items=100),
    f"{_P}CreateCannedReplyRequest.canned_reply_id": ID,
    f"{_P}GetCannedReplyRequest.name": _name("cannedReplies"),
    f"{_P}DeleteCannedReplyRequest.name": _name("cannedReplies"),
    f"{_P}ListCannedRepliesRequest.page_size": PAGE_SIZE,
    f"{_P}ListCannedRepliesRequest.page_token": PAGE_TOKEN,
    f"{_P}ListCannedRepliesRequest.owner": _name("agents"),
    f"{_P}ListCannedRepliesRequest.category": _name("cannedReplyCategories"),
    f"{_P}ListCannedRepliesRequest.language": LANGUAGE,
    f"{_P}SearchCannedRepliesRequest.query": Limit(max_len=200),
    f"{_P}SearchCannedRepliesRequest.language": LANGUAGE,
    f"{_P}SearchCannedRepliesRequest.category": _name("cannedReplyCategories"),
    f"{_P}SearchCannedRepliesRequest.page_size": Limit(low=0, high=100),
    f"{_P}SearchCannedRepliesRequest.page_token": PAGE_TOKEN,
    f"{_P}RenderCannedReplyRequest.name": _name("cannedReplies"),
    f"{_P}RenderCannedReplyRequest.conversation": CONVERSATION,
    # --- BotService (what a flow may hold beyond these is core.bots.validate's) ----------------
    **{
        f"{_P}{kind}BotRequest.name": _name("bots")
        for kind in ("Get", "Activate", "Pause", "Delete", "Preview")
    },
    f"{_P}CreateBotRequest.bot_id": ID,
    f"{_P}GetBotStatsRequest.name": _name("bots"),
    f"{_P}GetBotRequest.version": Limit(low=0, high=1_000_000),
    f"{_P}ListBotsRequest.page_size": PAGE_SIZE,
    f"{_P}ListBotsRequest.page_token": PAGE_TOKEN,
    f"{_P}Bot.name": _name("bots"),
    f"{_P}Bot.display_name": DISPLAY_NAME,
    f"{_P}Bot.channels": _names("channels", 20),
    f"{_P}Bot.triggers": Limit(max_items=50),
    f"{_P}Bot.version": Limit(low=0, high=1_000_000),
    f"{_P}Bot.webhook_secret": Limit(max_len=128),
    f"{_P}BotTrigger.step": BOT_STEP,
    f"{_P}PhraseTrigger.text": Limit(max_len=200),
    f"{_P}ReferenceTrigger.reference": ID,
    f"{_P}KeywordTrigger.keywords": Limit(max_len=100, max_items=50),
    f"{_P}BotFlow.start_step": BOT_STEP,
    f"{_P}BotFlow.steps": Limit(max_items=200),
    f"{_P}BotFlow.default_reply": BOT_TEXT,
    f"{_P}BotFlow.max_misses": Limit(low=0, high=20),
    f"{_P}BotFlow.handoff_text": BOT_TEXT,
    f"{_P}BotStep.id": BOT_STEP,
    f"{_P}BotContent.title": Limit(max_len=200),
    f"{_P}BotContent.body": BOT_TEXT,
    f"{_P}BotContent.footer": Limit(max_len=200),
    f"{_P}BotContent.media": Limit(max_items=10),
    f"{_P}MessageStep.next": BOT_STEP,
    f"{_P}ChoiceStep.options": Limit(max_items=10),
    f"{_P}ChoiceStep.button_text": Limit(max_len=200),
    f"{_P}ChoiceStep.no_match_reply": BOT_TEXT,
    f"{_P}BotOption.id": ID,
    f"{_P}BotOption.title": Limit(max_len=200),
    f"{_P}BotOption.description": Limit(max_len=200),
    f"{_P}BotOption.next": BOT_STEP,
    f"{_P}QuestionStep.field": ID,
    f"{_P}QuestionStep.invalid_reply": BOT_TEXT,
    f"{_P}QuestionStep.next": BOT_STEP,
    f"{_P}ConditionStep.branches": Limit(max_items=20),
    f"{_P}ConditionStep.otherwise": BOT_STEP,
    f"{_P}BotBranch.next": BOT_STEP,
    f"{_P}ChannelCondition.channels": _names("channels", 20),
    f"{_P}TagCondition.tag": Limit(max_len=MAX_TAG_LENGTH),
    f"{_P}FieldCondition.field": ID,
    f"{_P}FieldCondition.value": Limit(max_len=1_000),
    f"{_P}LanguageCondition.languages": Limit(max_len=35, form=f.LANGUAGE, max_items=20),
    f"{_P}KnowledgeStep.language": LANGUAGE,
    f"{_P}KnowledgeStep.next": BOT_STEP,
    f"{_P}KnowledgeStep.otherwise": BOT_STEP,
    f"{_P}WebhookStep.url": Limit(max_len=2_048, form=f.URI),
    f"{_P}WebhookStep.timeout": _seconds(10),
    f"{_P}WebhookStep.next": BOT_STEP,
    f"{_P}WebhookStep.fallback": BOT_STEP,
    f"{_P}WebhookStep.allowed_next": Limit(max_len=64, form=f.ID, max_items=200),
    f"{_P}ActionsStep.actions": Limit(max_items=20),
    f"{_P}ActionsStep.next": BOT_STEP,
    f"{_P}SetTagsAction.add": TAGS,
    f"{_P}SetTagsAction.remove": TAGS,
    f"{_P}SetFieldAction.field": ID,
    f"{_P}HandOffAction.queue": _name("queues"),
    f"{_P}HandOffAction.skills": Limit(max_items=50),
    f"{_P}HandOffAction.priority": PRIORITY,
    f"{_P}PreviewBotRequest.version": Limit(low=0, high=1_000_000),
    f"{_P}PreviewBotRequest.inputs": Limit(max_items=100),
    f"{_P}PreviewBotRequest.effect_answers": Limit(max_items=100),
    f"{_P}PreviewBotRequest.start_step": BOT_STEP,
    f"{_P}PreviewBotRequest.first_text": BOT_TEXT,
    f"{_P}PreviewContext.channel": _name("channels"),
    f"{_P}PreviewContext.language": LANGUAGE,
    f"{_P}PreviewContext.tags": TAGS,
    f"{_P}PreviewContext.fields": Limit(max_items=200),
    f"{_P}PreviewContext.FieldsEntry.key": Limit(max_len=64),
    f"{_P}PreviewInput.text": BOT_TEXT,
    f"{_P}PreviewInput.option_id": ID,
    f"{_P}PreviewWebhookAnswer.status_code": Limit(low=0, high=999),
    f"{_P}PreviewWebhookAnswer.body": Limit(max_len=65_536),
    f"{_P}PreviewKnowledgeAnswer.answer": BOT_TEXT,
    f"{_P}PreviewKnowledgeAnswer.article": Limit(max_len=200),
    # --- QrCodeService (targets are checked whole by core.qr.targets) -------------------------
    f"{_P}QrCode.name": _name("qrCodes"),
    f"{_P}QrCode.display_name": DISPLAY_NAME,
    f"{_P}QrCode.campaign": Limit(max_len=200, form=f.LINE),
    f"{_P}QrCode.place": Limit(max_len=200, form=f.LINE),
    f"{_P}QrCode.tracking_url": Limit(max_len=4_096),
    f"{_P}QrCode.target_url": Limit(max_len=4_096),
    **{f"{_P}QrCodeCounts.{n}": EVENT_ID for n in ("scans", "unique_scans", "conversations")},
    f"{_P}WhatsAppTarget.phone_number": Limit(max_len=16, form=f.PHONE),
    f"{_P}WhatsAppTarget.trigger_phrase": Limit(max_len=500),
    f"{_P}LineTarget.basic_id": Limit(
        max_len=41,
        form=f.Form(
            "@ and 1 to 40 of a-z0-9._- (like @123abcde)", lambda t: bool(LINE_ID.fullmatch(t))
        ),
    ),
    f"{_P}LineTarget.trigger_phrase": Limit(max_len=500),
    f"{_P}WebChatTarget.page_url": Limit(max_len=2_048, form=f.URI),
    f"{_P}WebChatTarget.reference": ID,
    f"{_P}UrlTarget.url": Limit(max_len=2_048, form=f.URI),
    **{
        f"{_P}{verb}QrCodeRequest.name": _name("qrCodes")
        for verb in ("Get", "Activate", "Deactivate", "Delete")
    },
    f"{_P}GetQrCodeImageRequest.name": _name("qrCodes"),
    f"{_P}GetQrCodeImageRequest.size": Limit(low=0, high=4_096),
    f"{_P}GetQrCodeStatsRequest.name": _name("qrCodes"),
    f"{_P}GetQrCodeStatsRequest.start_date": Limit(max_len=10, form=f.DATE),
    f"{_P}GetQrCodeStatsRequest.end_date": Limit(max_len=10, form=f.DATE),
    f"{_P}ListQrCodesRequest.page_size": PAGE_SIZE,
    f"{_P}ListQrCodesRequest.page_token": PAGE_TOKEN,
    f"{_P}ListQrCodesRequest.campaign": Limit(max_len=200, form=f.LINE),
    # --- KnowledgeService (articles are checked whole by core.store.knowledge) ----------------
    f"{_P}KnowledgeCategory.name": _name("knowledgeCategories"),
    f"{_P}KnowledgeCategory.display_name": DISPLAY_NAME,
    f"{_P}KnowledgeCategory.description": Limit(max_len=1_000),
    f"{_P}CreateKnowledgeCategoryRequest.category_id": ID,
    **{
        f"{_P}{verb}KnowledgeCategoryRequest.name": _name("knowledgeCategories")
        for verb in ("Get", "Delete")
    },
    f"{_P}ListKnowledgeCategoriesRequest.page_size": PAGE_SIZE,
    f"{_P}ListKnowledgeCategoriesRequest.page_token": PAGE_TOKEN,
    f"{_P}Article.name": _name("articles"),
    f"{_P}Article.category": _name("knowledgeCategories"),
    f"{_P}Article.language": LANGUAGE,
    f"{_P}Article.title": Limit(max_len=500),
    f"{_P}Article.body": Limit(max_len=65_536),
    f"{_P}Article.keywords": Limit(max_len=100, min_len=1, max_items=50),
    f"{_P}CreateArticleRequest.article_id": ID,
    **{f"{_P}{verb}ArticleRequest.name": _name("articles") for verb in ("Get", "Delete")},
    f"{_P}ListArticlesRequest.page_size": PAGE_SIZE,
    f"{_P}ListArticlesRequest.page_token": PAGE_TOKEN,
    f"{_P}ListArticlesRequest.category": _name("knowledgeCategories"),
    f"{_P}ListArticlesRequest.language": LANGUAGE,
    f"{_P}SearchArticlesRequest.query": Limit(max_len=1_000),
    f"{_P}SearchArticlesRequest.language": LANGUAGE,
    f"{_P}SearchArticlesRequest.page_size": Limit(low=0, high=20),
    # --- BroadcastService (content, audience and files are checked whole by the store) -------
    f"{_P}Broadcast.name": _name("broadcasts"),
    f"{_P}Broadcast.display_name": DISPLAY_NAME,
    f"{_P}Broadcast.channel": _name("channels"),
    f"{_P}Broadcast.time_zone": Limit(max_len=64),
    f"{_P}Broadcast.creator": Limit(max_len=200),
    f"{_P}Broadcast.quota_usage": Limit(max_items=10),
    f"{_P}QuotaUse.metric": Limit(max_len=64),
    f"{_P}BroadcastContent.text": Limit(max_len=4_000),
    f"{_P}BroadcastContent.subject": Limit(max_len=200),
    f"{_P}BroadcastContent.link": Limit(max_len=1_000),
    f"{_P}WhatsAppTemplateContent.name": Limit(max_len=512),
    f"{_P}WhatsAppTemplateContent.language": Limit(max_len=15),
    f"{_P}WhatsAppTemplateContent.parameters": Limit(max_len=1_024, max_items=20),
    f"{_P}BroadcastAudience.groups": _names("customerGroups", 50),
    f"{_P}BroadcastAudience.tags": TAGS,
    f"{_P}BroadcastAudience.customers": _names("customers", 1_000),
    f"{_P}BroadcastFile.content": Limit(max_len=MAX_CUSTOMER_IMPORT_BYTES),
    f"{_P}BroadcastFile.default_region": Limit(max_len=2, form=f.ID),
    f"{_P}BroadcastFile.rows": Limit(low=0, high=1_000_000),
    f"{_P}CreateBroadcastRequest.broadcast_id": ID,
    **{
        f"{_P}{verb}BroadcastRequest.name": _name("broadcasts")
        for verb in ("Get", "Delete", "Preview", "Send", "Pause", "Resume", "Cancel")
    },
    f"{_P}ListBroadcastsRequest.page_size": PAGE_SIZE,
    f"{_P}ListBroadcastsRequest.page_token": PAGE_TOKEN,
    f"{_P}PreviewBroadcastRequest.sample_size": Limit(low=0, high=20),
    f"{_P}SendBroadcastRequest.local_schedule_time": Limit(max_len=19),
    f"{_P}ListBroadcastRecipientsRequest.parent": _name("broadcasts"),
    f"{_P}ListBroadcastRecipientsRequest.page_size": PAGE_SIZE,
    f"{_P}ListBroadcastRecipientsRequest.page_token": PAGE_TOKEN,
    f"{_P}ClaimBroadcastSendsRequest.channel": ID,
    f"{_P}ClaimBroadcastSendsRequest.sender": ID,
    f"{_P}ClaimBroadcastSendsRequest.session": ID,
    f"{_P}ClaimBroadcastSendsRequest.max_sends": Limit(low=0, high=1_000),
    f"{_P}ClaimBroadcastSendsRequest.lease": _seconds(3_600),
    f"{_P}ReportBroadcastSendsRequest.channel": ID,
    f"{_P}ReportBroadcastSendsRequest.results": Limit(max_items=1_000),
    f"{_P}BroadcastSendResult.recipient": Limit(max_len=140, form=BROADCAST_RECIPIENT),
    f"{_P}BroadcastSendResult.provider_message_id": Limit(max_len=MAX_PROVIDER_ID),
    f"{_P}BroadcastSendResult.error": Limit(max_len=1_000),
    f"{_P}BroadcastSendResult.session": ID,
    # --- AuthService, passwords (core.store.passwords: 10 to 128 characters) ------------------
    f"{_P}SignInRequest.tenant": ID,
    f"{_P}SignInRequest.login": Limit(max_len=MAX_DISPLAY_NAME),
    f"{_P}SignInRequest.password": Limit(max_len=MAX_PASSWORD),
    f"{_P}ListLoginsRequest.agent": _name("agents"),
    f"{_P}ListLoginsRequest.page_size": PAGE_SIZE,
    f"{_P}ListLoginsRequest.page_token": PAGE_TOKEN,
    f"{_P}SetAgentPasswordRequest.agent": _name("agents"),
    f"{_P}SetAgentPasswordRequest.password": Limit(max_len=MAX_PASSWORD),
    # --- TeamChatService (core.store.team_chat) -----------------------------------------------
    f"{_P}CreateThreadRequest.members": _names("agents", MAX_TEAM_MEMBERS - 1),
    f"{_P}CreateThreadRequest.title": DISPLAY_NAME,
    f"{_P}ListThreadsRequest.page_size": PAGE_SIZE,
    f"{_P}ListThreadsRequest.page_token": PAGE_TOKEN,
    f"{_P}SendTeamMessageRequest.thread": _name("teamThreads"),
    f"{_P}SendTeamMessageRequest.text": Limit(max_len=MAX_TEAM_MESSAGE),
    f"{_P}SendTeamMessageRequest.request_id": Limit(max_len=128),
    f"{_P}ListTeamMessagesRequest.thread": _name("teamThreads"),
    f"{_P}ListTeamMessagesRequest.page_size": PAGE_SIZE,
    f"{_P}ListTeamMessagesRequest.page_token": PAGE_TOKEN,
    f"{_P}StreamTeamChatRequest.resume_after_message_id": EVENT_ID,
    f"{_P}ListColleaguesRequest.department": _name("departments"),
    f"{_P}ListColleaguesRequest.page_size": PAGE_SIZE,
    f"{_P}ListColleaguesRequest.page_token": PAGE_TOKEN,
}
"""Field full name (``usher.v1.Attachment.uri``) -> its limit; see the module docstring for
what an undeclared field gets."""

DEFAULT: Final = Limit()
