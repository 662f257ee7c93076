-- What the API documents and did not store.
--
-- Skills and departments: when they were created. The projection inserts their rows (the column
-- default stamps them); rows older than this migration have no known time and stay NULL.
ALTER TABLE skills ADD COLUMN created_at timestamptz;
ALTER TABLE skills ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE departments ADD COLUMN created_at timestamptz;
ALTER TABLE departments ALTER COLUMN created_at SET DEFAULT now();

-- A skill's display name is not routing state: the admin path writes this column alone
-- (core/store/admin.py), the projection the row's existence. Empty: shown as the skill's id.
ALTER TABLE skills ADD COLUMN display_name text NOT NULL DEFAULT ''
    CHECK (length(display_name) <= 200);

-- A credential's note for people, written with the credential (core/store/credentials.py).
ALTER TABLE api_credentials ADD COLUMN display_name text NOT NULL DEFAULT ''
    CHECK (length(display_name) <= 200);

-- The customer's region and language a conversation started with (the engine's, so the
-- language is the tenant's default when none was given), written by the projection.
ALTER TABLE conversations ADD COLUMN region text NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN language text NOT NULL DEFAULT '';
UPDATE conversations c
SET region = coalesce(e.payload ->> 'region', ''), language = coalesce(e.payload ->> 'language', '')
FROM events e
WHERE e.type = 'ConversationStarted' AND e.tenant_id = c.tenant_id
  AND e.payload ->> 'conversation_id' = c.conversation_id;
