-- Broadcasts (core/store/broadcasts.py, broadcast_sends.py, broadcast_opt_outs.py): messages
-- the tenant sends first to many customers on one channel. Plain data the front door writes;
-- the channel gateways claim sends and report what became of them through BroadcastService.

CREATE TABLE broadcasts (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    broadcast_id  text NOT NULL CHECK (broadcast_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    display_name  text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    channel_id    text NOT NULL,
    channel_type  text NOT NULL CHECK (channel_type IN ('whatsapp', 'line', 'sms', 'email')),
    content       jsonb NOT NULL,                 -- text, subject, template, link (templates)
    audience      jsonb NOT NULL,                 -- groups, tags, filter, customers, file meta
    audience_file bytea,                          -- the uploaded CSV/XLSX as given
    state         text NOT NULL DEFAULT 'draft'
        CHECK (state IN ('draft', 'scheduled', 'sending', 'paused', 'completed', 'cancelled')),
    paused_from   text CHECK (paused_from IN ('scheduled', 'sending')),
    schedule_at   timestamptz,
    time_zone     text NOT NULL DEFAULT 'UTC',
    left_out      integer NOT NULL DEFAULT 0,     -- no address, or an address listed already
    quota         jsonb NOT NULL DEFAULT '{}',    -- metric -> amount reserved when sent
    created_by    text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    submitted_at  timestamptz,
    ended_at      timestamptz,
    PRIMARY KEY (tenant_id, broadcast_id),
    CHECK ((state = 'draft') = (schedule_at IS NULL))
);
CREATE INDEX broadcasts_created ON broadcasts (tenant_id, created_at DESC, broadcast_id DESC);
-- Claims look for the channel's broadcasts that are due or sending.
CREATE INDEX broadcasts_live ON broadcasts (tenant_id, channel_id, schedule_at)
    WHERE state IN ('scheduled', 'sending');

-- One row per recipient, written when the broadcast is sent; its text rendered then.
CREATE TABLE broadcast_recipients (
    tenant_id     text NOT NULL,
    broadcast_id  text NOT NULL,
    recipient_id  integer NOT NULL CHECK (recipient_id > 0),
    customer_id   text,
    address       text NOT NULL CHECK (length(address) BETWEEN 1 AND 320),
    text          text NOT NULL DEFAULT '',
    subject       text NOT NULL DEFAULT '',
    parameters    text[] NOT NULL DEFAULT '{}',
    state         text NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'delivered', 'read',
                      'failed', 'skipped_opted_out', 'skipped_blocked', 'cancelled')),
    error         text NOT NULL DEFAULT '' CHECK (length(error) <= 1000),
    provider_id   text CHECK (length(provider_id) <= 256),
    claims        integer NOT NULL DEFAULT 0,     -- claims not released (reconcile when > 0)
    claim_sender  text,
    claim_session text,
    lease_until   timestamptz,
    first_claimed_at timestamptz,
    claimed_at    timestamptz,
    queued_at     timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    delivered_at  timestamptz,
    read_at       timestamptz,
    failed_at     timestamptz,
    PRIMARY KEY (tenant_id, broadcast_id, recipient_id),
    FOREIGN KEY (tenant_id, broadcast_id) REFERENCES broadcasts ON DELETE CASCADE
);
CREATE UNIQUE INDEX broadcast_recipients_address
    ON broadcast_recipients (tenant_id, broadcast_id, address);
-- What claims walk: the recipients still to send, in order.
CREATE INDEX broadcast_recipients_pending ON broadcast_recipients (tenant_id, broadcast_id, recipient_id)
    WHERE state IN ('queued', 'sending');
-- Provider status callbacks name the provider's message id.
CREATE INDEX broadcast_recipients_provider ON broadcast_recipients (tenant_id, provider_id)
    WHERE provider_id IS NOT NULL;

-- Who opted out of broadcasts on a channel (a STOP reply), by address on the channel.
CREATE TABLE broadcast_opt_outs (
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    channel_id  text NOT NULL,
    address     text NOT NULL CHECK (length(address) BETWEEN 1 AND 320),
    customer_id text,
    keyword     text NOT NULL DEFAULT '' CHECK (length(keyword) <= 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id, address)
);
CREATE INDEX broadcast_opt_outs_customer ON broadcast_opt_outs (tenant_id, channel_id, customer_id)
    WHERE customer_id IS NOT NULL;
