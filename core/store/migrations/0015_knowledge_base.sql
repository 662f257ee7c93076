-- The knowledge base (core/store/knowledge.py): categories and articles per tenant, written by
-- the front door (KnowledgeService) and `usher kb import`, searched from an in-memory index per
-- tenant (core/knowledge) that is rebuilt when the tenant's kb_versions row moves.

CREATE TABLE kb_categories (
    tenant_id    text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    category_id  text NOT NULL CHECK (category_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    display_name text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, category_id)
);

-- An article's id is its key, kept from imports (`id`), so re-importing updates it. A category
-- with articles cannot be deleted (the foreign key refuses).
CREATE TABLE kb_articles (
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    article_id  text NOT NULL CHECK (article_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    category_id text,
    language    text NOT NULL CHECK (length(language) BETWEEN 1 AND 35),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    body        text NOT NULL DEFAULT '' CHECK (length(body) <= 65536),
    keywords    text[] NOT NULL DEFAULT '{}' CHECK (cardinality(keywords) <= 50),
    published   boolean NOT NULL DEFAULT true,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, article_id),
    FOREIGN KEY (tenant_id, category_id) REFERENCES kb_categories
);
CREATE INDEX kb_articles_category ON kb_articles (tenant_id, category_id, article_id);

-- Moves with every change of a tenant's articles, in the same transaction: a front door's
-- cached index is current while its version is.
CREATE TABLE kb_versions (
    tenant_id text PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    version   bigint NOT NULL DEFAULT 0
);
