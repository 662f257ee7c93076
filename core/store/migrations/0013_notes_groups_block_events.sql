-- Customer database gaps (issue 12): files on notes, saved-filter groups, and the blocklist's
-- change log (core/store/note_files.py, customer_records.py, block_events.py).

-- Notes carry files by reference (name, media type, size, URI, optional SHA-256), as messages
-- do: a JSON array, at most 10 (core/store/note_files.py checks each). A note needs text or a
-- file.
ALTER TABLE customer_notes
    ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(attachments) = 'array' AND jsonb_array_length(attachments) <= 10),
    DROP CONSTRAINT customer_notes_body_check,
    ADD CONSTRAINT customer_notes_body_check CHECK (length(body) <= 10000),
    ADD CONSTRAINT customer_notes_not_empty CHECK (body <> '' OR attachments <> '[]');
ALTER TABLE conversation_notes
    ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(attachments) = 'array' AND jsonb_array_length(attachments) <= 10);

-- A group is a static member list (filter NULL) or a saved filter (a CustomerQuery as JSON)
-- whose members are the customers matching it when read.
ALTER TABLE customer_groups ADD COLUMN filter jsonb;

-- The blocklist's change log: one row per change (created, unblocked, expired), numbered per
-- tenant without gaps in commit order (writers hold the tenant's advisory lock), written in
-- the same transaction as the change (expiry: by the housekeeping sweep, which stamps
-- blocks.expiry_recorded_at). BlocklistService.WatchBlocks streams it.
ALTER TABLE blocks ADD COLUMN expiry_recorded_at timestamptz;
CREATE INDEX blocks_expiring ON blocks (expires_at)
    WHERE unblocked_at IS NULL AND expires_at IS NOT NULL AND expiry_recorded_at IS NULL;

CREATE TABLE block_events (
    tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    seq       bigint NOT NULL CHECK (seq > 0),
    block_id  bigint NOT NULL,
    change    text NOT NULL CHECK (change IN ('created', 'unblocked', 'expired')),
    at        timestamptz NOT NULL,
    actor     text NOT NULL DEFAULT '' CHECK (length(actor) <= 200),
    PRIMARY KEY (tenant_id, seq),
    FOREIGN KEY (tenant_id, block_id) REFERENCES blocks
);
-- A block ends once: unblocked or expired.
CREATE UNIQUE INDEX block_events_one_end ON block_events (tenant_id, block_id)
    WHERE change <> 'created';
-- Blocks made before the log: their creation and unblocking, in time order (their expiries
-- follow from the first sweep).
INSERT INTO block_events (tenant_id, seq, block_id, change, at, actor)
SELECT tenant_id, row_number() OVER (PARTITION BY tenant_id ORDER BY at, change, block_id),
       block_id, change, at, actor
FROM (SELECT tenant_id, block_id, 'created' AS change, created_at AS at, created_by AS actor
      FROM blocks
      UNION ALL
      SELECT tenant_id, block_id, 'unblocked', unblocked_at, coalesce(unblocked_by, '')
      FROM blocks WHERE unblocked_at IS NOT NULL) e;
