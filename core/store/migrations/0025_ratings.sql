-- Satisfaction ratings (ConversationService.RateConversation; core/store/ratings.py): the
-- engine's ConversationRated events projected in the event log's transaction, one row per
-- conversation (the engine refuses a second rating, so the key never conflicts in practice).
CREATE TABLE conversation_ratings (
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    conversation_id text NOT NULL,
    channel         text NOT NULL,
    queue_id        text NOT NULL DEFAULT '',
    agent_id        text NOT NULL DEFAULT '',
    score           smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment         text NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    rated_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX conversation_ratings_channel ON conversation_ratings (tenant_id, channel, rated_at);

-- The ratings' distribution in the reports' rollups (core/reports/measures.py: rating_1 ..
-- rating_5 after rating_points in MEASURES; columns are read and written by name).
ALTER TABLE report_facts
    ADD COLUMN rating_1 integer, ADD COLUMN rating_2 integer, ADD COLUMN rating_3 integer,
    ADD COLUMN rating_4 integer, ADD COLUMN rating_5 integer;
ALTER TABLE report_rollups
    ADD COLUMN rating_1 integer, ADD COLUMN rating_2 integer, ADD COLUMN rating_3 integer,
    ADD COLUMN rating_4 integer, ADD COLUMN rating_5 integer;
