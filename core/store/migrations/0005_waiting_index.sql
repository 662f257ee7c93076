-- The conversations waiting for an agent, per tenant and queue: what the queue-depth metric
-- reads every few seconds. Partial, so it stays as small as the queues themselves.
CREATE INDEX conversations_waiting ON conversations (tenant_id, queue_id, queued_at)
    WHERE state IN ('queued', 'offered');
