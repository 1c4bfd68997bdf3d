"""Outbound webhooks: endpoints, the durable outbox, signing and the delivery worker.

- `settings`: the tunables, read from ``CALLPILOT_WEBHOOK_*`` environment variables;
- `payloads`: the event types and the JSON bodies sent for them;
- `outbox`: the tables' queries, including the hook the event log calls inside
  its transaction so a delivery row exists durably before the event is published;
- `signing`: secrets and Standard Webhooks signatures;
- `worker`: claims due deliveries with a lease and POSTs them.
"""
