-- Bots' flows in conversations (core/store/bot_runs.py): a projection of the engine's bot
-- events (BotTurned, BotHandedOff, BotEnded), written in the same transaction. One row per
-- flow started in a conversation (`run` counts them there). BotService.GetBotStats counts
-- them; the conversation lists "bot could not answer" read them.
CREATE TABLE bot_runs (
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    conversation_id text NOT NULL,
    run             integer NOT NULL CHECK (run >= 1),
    bot_id          text NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    customer_id     text NOT NULL,
    trigger         text NOT NULL,  -- new_conversation, phrase, reference, out_of_hours, keyword, returned
    outcome         text NOT NULL DEFAULT 'started'
        CHECK (outcome IN ('started', 'ended', 'resolved', 'handed_off')),
    reason          text NOT NULL DEFAULT '',  -- bot_handoff, bot_could_not_answer
    fields          jsonb NOT NULL DEFAULT '{}',  -- what the flow collected, at a hand-off
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    PRIMARY KEY (tenant_id, conversation_id, run)
);
CREATE INDEX bot_runs_bot ON bot_runs (tenant_id, bot_id, started_at);
CREATE INDEX bot_runs_not_answered ON bot_runs (tenant_id, conversation_id)
    WHERE reason = 'bot_could_not_answer';
