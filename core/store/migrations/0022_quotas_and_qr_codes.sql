-- Per-tenant quotas (core/store/quotas.py) and QR codes with their tracking links
-- (core/store/qr_codes.py): plain data beside routing, written by the front door and by
-- `usher admin quota` (the installation's admin), never by the shard.

-- A tenant's limit of one metric (customers, customer_groups, bots, qr_codes, sms_per_month,
-- broadcast_recipients; the list is core/store/quotas.py's METRICS). No row: unlimited.
CREATE TABLE tenant_quotas (
    tenant_id  text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    metric     text NOT NULL CHECK (metric ~ '^[a-z][a-z_]{0,63}$'),
    max_value  bigint NOT NULL CHECK (max_value >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, metric)
);

-- What a per-month metric has used in one calendar month of the tenant's time zone (`month`
-- is that month's first day). Counted metrics (customers, bots...) count their rows instead.
CREATE TABLE quota_consumption (
    tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    metric    text NOT NULL CHECK (metric ~ '^[a-z][a-z_]{0,63}$'),
    month     date NOT NULL CHECK (extract(day FROM month) = 1),
    used      bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (tenant_id, metric, month)
);

-- The customers' limits move onto tenant_quotas (groups become `customer_groups`).
INSERT INTO tenant_quotas (tenant_id, metric, max_value)
    SELECT tenant_id, 'customers', max_customers FROM customer_limits
    WHERE max_customers IS NOT NULL;
INSERT INTO tenant_quotas (tenant_id, metric, max_value)
    SELECT tenant_id, 'customer_groups', max_groups FROM customer_limits
    WHERE max_groups IS NOT NULL;
DROP TABLE customer_limits;

-- A QR code: `code` is its id and its tracking link's path (/q/{code}), unique in the whole
-- installation since the link names no tenant. `target_url` is where the link redirects, built
-- from `target` (the kind's fields) when written. `phrase_key` (the trigger phrase trimmed and
-- case-folded) and `reference` tie conversations to the code, so each is unique per tenant.
CREATE TABLE qr_codes (
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    code           text NOT NULL CHECK (code ~ '^[a-z0-9]{6,16}$'),
    display_name   text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    campaign       text NOT NULL DEFAULT '' CHECK (length(campaign) <= 200),
    place          text NOT NULL DEFAULT '' CHECK (length(place) <= 200),
    start_at       timestamptz,
    end_at         timestamptz,
    target_kind    text NOT NULL CHECK (target_kind IN ('whatsapp', 'line', 'web_chat', 'url')),
    target         jsonb NOT NULL,
    target_url     text NOT NULL CHECK (length(target_url) BETWEEN 1 AND 4096),
    trigger_phrase text NOT NULL DEFAULT '' CHECK (length(trigger_phrase) <= 500),
    phrase_key     text NOT NULL DEFAULT '' CHECK (length(phrase_key) <= 500),
    reference      text NOT NULL DEFAULT '' CHECK (length(reference) <= 64),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    PRIMARY KEY (tenant_id, code),
    CHECK (start_at IS NULL OR end_at IS NULL OR end_at > start_at)
);
CREATE UNIQUE INDEX qr_codes_code ON qr_codes (code);
CREATE UNIQUE INDEX qr_codes_phrase ON qr_codes (tenant_id, phrase_key) WHERE phrase_key <> '';
CREATE UNIQUE INDEX qr_codes_reference ON qr_codes (tenant_id, reference) WHERE reference <> '';
CREATE INDEX qr_codes_listing ON qr_codes (tenant_id, active, created_at, code);

-- Scans of a code's tracking link per day of the tenant's time zone: every redirect, and the
-- distinct visitors among them.
CREATE TABLE qr_code_scans (
    tenant_id    text NOT NULL,
    code         text NOT NULL,
    day          date NOT NULL,
    scans        bigint NOT NULL CHECK (scans >= 0),
    unique_scans bigint NOT NULL CHECK (unique_scans >= 0 AND unique_scans <= scans),
    PRIMARY KEY (tenant_id, code, day),
    FOREIGN KEY (tenant_id, code) REFERENCES qr_codes ON DELETE CASCADE
);

-- A day's visitors of a code: a hash of the client's address and user agent salted with that
-- day's random salt; kept for a day or two only (no address is ever stored).
CREATE TABLE qr_code_visitors (
    tenant_id text NOT NULL,
    code      text NOT NULL,
    day       date NOT NULL,
    visitor   bytea NOT NULL CHECK (length(visitor) = 16),
    PRIMARY KEY (tenant_id, code, day, visitor),
    FOREIGN KEY (tenant_id, code) REFERENCES qr_codes ON DELETE CASCADE
);
CREATE INDEX qr_code_visitors_day ON qr_code_visitors (day);

-- The salts of the visitors' hashes, one per day, dropped with the day's visitors.
CREATE TABLE qr_scan_salts (
    day  date PRIMARY KEY,
    salt bytea NOT NULL CHECK (length(salt) = 32)
);
