-- Engine snapshots: a tenant's routing state after event `seq`, so a rebuild replays only the
-- events after it. Written by the owning incarnation only (the epoch is checked on insert).
CREATE TABLE snapshots (
    tenant_id text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    seq       bigint NOT NULL,
    format    integer NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now(),
    state     bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
