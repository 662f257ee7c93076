-- Web chat visitors (ReportService.GetVisitorReport; core/store/visits.py): one row per
-- conversation started with a page or referrer (ConversationStarted.page, .referrer), projected
-- in the event log's transaction. The page is kept as its path (no query or fragment) and the
-- referrer as its host, so the rows are small and group well.
CREATE TABLE conversation_visits (
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    conversation_id text NOT NULL,
    channel         text NOT NULL,
    page            text NOT NULL DEFAULT '',
    referrer_host   text NOT NULL DEFAULT '',
    region          text NOT NULL DEFAULT '',
    started_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);
CREATE INDEX conversation_visits_started ON conversation_visits (tenant_id, started_at);
