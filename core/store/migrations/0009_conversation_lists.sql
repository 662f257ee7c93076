-- Conversation lists for consoles (core/store/conversation_lists.py, pins.py, activity.py).

-- Pins are per agent (or per supervisor's credential): not routing state, written by the
-- record service alone. A conversation's deletion takes its pins with it.
CREATE TABLE conversation_pins (
    tenant_id       text NOT NULL,
    pinned_by       text NOT NULL CHECK (length(pinned_by) BETWEEN 1 AND 200),
    conversation_id text NOT NULL,
    pinned_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, pinned_by, conversation_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations ON DELETE CASCADE
);

-- Lists filter by state and owner and page newest first (keyset on created_at, id).
CREATE INDEX conversations_state_created
    ON conversations (tenant_id, state, created_at DESC, conversation_id DESC);
CREATE INDEX conversations_owner_created
    ON conversations (tenant_id, owner_agent_id, created_at DESC, conversation_id DESC)
    WHERE owner_agent_id IS NOT NULL;
CREATE INDEX conversations_closed ON conversations (tenant_id, closed_at)
    WHERE closed_at IS NOT NULL;
CREATE INDEX conversations_tags ON conversations USING gin (tags);
-- Customers are found by phone (customers_phone), e-mail and name (customers_email and
-- customers_name_trgm, migration 0010, which owns the customers table's new indexes).

-- A conversation's activity log: its events, in order.
CREATE INDEX events_conversation ON events (tenant_id, (payload ->> 'conversation_id'), seq)
    WHERE payload ? 'conversation_id';
