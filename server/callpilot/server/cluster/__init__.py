"""Running Callpilot as several instances on one PostgreSQL and one Redis.

- `hub.RedisHub`: the instance's identity and its Redis connections.
- `redis_bus.RedisBus`: the event bus across instances (Redis Streams), with
  the in-process bus as its local fan-out.
- `lease.CallLease`: which instance owns a live call, renewed while it lives.
- `control`: EndCall, feedback, tool decisions and suggest-now sent to the
  owner of a call from any instance.
- `reaper`: calls whose owner died are ended (`OWNER_LOST`) by a survivor.

PostgreSQL stays the source of truth for durable events; Redis carries the
live tail and the coordination, so losing Redis degrades watchers on other
instances (they get UNAVAILABLE and resume later) but never loses a durable
event or stops a call on its owner.
"""
