-- Conversation lists by department (core/store/conversation_lists.py, read_care): the waiting
-- conversations whose latest transfer targets a department are found from that department's
-- transfers, not from every transfer of the tenant.
CREATE INDEX transfers_department ON transfers (tenant_id, target_id, conversation_id)
    WHERE target = 'department';
