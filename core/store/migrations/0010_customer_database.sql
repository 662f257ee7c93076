-- The customer database (CustomerService, core/store/customer_*.py): the customers table of
-- 0001 (which the gateways' identity resolution writes, core/store/customers.py) gains the
-- details people keep, custom field values, tags, ownership, a recycle bin and merging.
ALTER TABLE customers
    ADD COLUMN company      text NOT NULL DEFAULT '' CHECK (length(company) <= 200),
    ADD COLUMN address      text NOT NULL DEFAULT '' CHECK (length(address) <= 500),
    ADD COLUMN language     text NOT NULL DEFAULT '' CHECK (length(language) <= 35),
    ADD COLUMN region       text NOT NULL DEFAULT '' CHECK (length(region) <= 64),
    ADD COLUMN avatar_uri   text NOT NULL DEFAULT '' CHECK (length(avatar_uri) <= 2048),
    ADD COLUMN external_ref text CHECK (length(external_ref) BETWEEN 1 AND 200),
    ADD COLUMN tags         text[] NOT NULL DEFAULT '{}',
    ADD COLUMN fields       jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN owner_agent_id text,
    ADD COLUMN visibility   text NOT NULL DEFAULT 'public'
        CHECK (visibility IN ('private', 'shared', 'public')),
    ADD COLUMN updated_at   timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deleted_at   timestamptz,             -- in the recycle bin since
    ADD COLUMN merged_into  text;                    -- reads follow it (conversations keep ids)
CREATE UNIQUE INDEX customers_external_ref ON customers (tenant_id, external_ref)
    WHERE external_ref IS NOT NULL;
CREATE INDEX customers_email ON customers (tenant_id, lower(email));
CREATE INDEX customers_deleted ON customers (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX customers_tags ON customers USING gin (tags);

-- Substring search (ILIKE) over names and companies, as 0002 does for messages.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX customers_name_trgm ON customers USING gin (name gin_trgm_ops);
        CREATE INDEX customers_company_trgm ON customers USING gin (company gin_trgm_ops);
    ELSE
        RAISE NOTICE 'pg_trgm is not installed: customer search scans the tenant''s customers';
    END IF;
END
$$;

CREATE TABLE customer_fields (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    field_key     text NOT NULL CHECK (field_key ~ '^[a-z][a-z0-9_]{0,63}$'),
    display_name  text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    type          text NOT NULL CHECK (type IN ('text', 'number', 'date', 'boolean',
                      'single_choice', 'multiple_choice', 'phone', 'email')),
    is_unique     boolean NOT NULL DEFAULT false,
    required      boolean NOT NULL DEFAULT false,
    enabled       boolean NOT NULL DEFAULT true,
    display_order integer NOT NULL DEFAULT 0,
    choices       text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, field_key)
);

-- The arbiter of unique custom fields: one row per (tenant, field, value).
CREATE TABLE customer_unique_values (
    tenant_id   text NOT NULL,
    field_key   text NOT NULL,
    value       text NOT NULL,
    customer_id text NOT NULL,
    PRIMARY KEY (tenant_id, field_key, value),
    FOREIGN KEY (tenant_id, field_key) REFERENCES customer_fields ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers ON DELETE CASCADE
);
CREATE INDEX customer_unique_values_customer ON customer_unique_values (tenant_id, customer_id);

CREATE TABLE customer_groups (
    tenant_id    text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    group_id     text NOT NULL CHECK (length(group_id) BETWEEN 1 AND 64),
    display_name text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, group_id)
);

CREATE TABLE customer_group_members (
    tenant_id   text NOT NULL,
    group_id    text NOT NULL,
    customer_id text NOT NULL,
    PRIMARY KEY (tenant_id, group_id, customer_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES customer_groups ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers ON DELETE CASCADE
);
CREATE INDEX customer_group_members_customer ON customer_group_members (tenant_id, customer_id);

CREATE TABLE customer_notes (
    tenant_id   text NOT NULL,
    customer_id text NOT NULL,
    note_id     bigint GENERATED ALWAYS AS IDENTITY,
    author      text NOT NULL,
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, note_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers ON DELETE CASCADE
);
CREATE INDEX customer_notes_customer ON customer_notes (tenant_id, customer_id, note_id);

-- Per-tenant limits (NULL: unlimited; no row: unlimited).
CREATE TABLE customer_limits (
    tenant_id     text PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    max_customers bigint CHECK (max_customers >= 0),
    max_groups    bigint CHECK (max_groups >= 0)
);
