-- Keyword search over message content (core/store/records.py) is `content ILIKE '%kw%'`, correct
-- with or without an index. Where pg_trgm can be installed, a trigram index lets that match skip
-- most rows (keywords of 3+ characters; CJK words are often shorter and still scan). Without
-- pg_trgm, or without the right to create it, this migration only leaves a notice.
-- Caveat: the index is built inside the migration's transaction, locking messages against
-- writes while it builds; on a large existing table, build it CONCURRENTLY by hand first.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
            CREATE INDEX IF NOT EXISTS messages_content_trgm
                ON messages USING gin (content gin_trgm_ops);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'messages_content_trgm not created (keyword search still works): %',
                SQLERRM;
        END;
    ELSE
        RAISE NOTICE 'pg_trgm is not available: keyword search scans message content';
    END IF;
END
$$;
