-- Authorization asks whether an agent was ever offered a conversation or took part in one of its
-- transfers (core/store/access.py): look these up by conversation, not by scanning the tenant.
CREATE INDEX offers_conversation ON offers (tenant_id, conversation_id);
CREATE INDEX transfers_conversation ON transfers (tenant_id, conversation_id);
