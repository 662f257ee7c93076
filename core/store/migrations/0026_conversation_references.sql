-- A conversation remembers the QR code's or campaign link's reference it was opened with
-- (StartConversation / ConversationOptions `reference`; the shard writes it with the
-- conversation's row). QR codes count their conversations by it (core/store/qr_scans.py).
ALTER TABLE conversations
    ADD COLUMN reference text NOT NULL DEFAULT '' CHECK (length(reference) <= 64);
CREATE INDEX conversations_reference ON conversations (tenant_id, reference, created_at)
    WHERE reference <> '';
