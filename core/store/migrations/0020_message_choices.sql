-- Structured choices on agents' and bots' messages, and a customer's pick (issue 13): stored
-- with the message so transcripts show them. Nullable columns without a default: no rewrite.
ALTER TABLE messages
    ADD COLUMN choices jsonb,  -- {style, button_text, header, footer, options: [{id, title, description}]}
    ADD COLUMN selected_option_id text CHECK (length(selected_option_id) <= 64);
