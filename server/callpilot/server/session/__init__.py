"""A live call and its event log.

Data flow of one call::

    audio chunk -> AudioDecoder (per speaker) -> STTEngine stream per speaker
        (a fallback engine, if configured, lives inside the engine and
         announces a switch with a DEGRADED speech event)
      -> transcripts: segment ids, redaction -> transcript events
      -> context engine -> context events
      -> suggestions: the assistant, one in flight, newest wins
         -> tool calls (proposals wait in tool_decisions) / deltas / completed
      -> event_log: durable events numbered 1, 2, 3 ... without gaps, stored,
         then published; ephemeral events carry the last durable sequence
      -> bus -> StreamCall / WatchCall (api.replay.replay_then_follow)

Modules follow the data: `event_log` (sequencing, persistence, publication),
`transcripts` (segment numbering and redaction), `suggestions` (trigger and
lifecycle), `tool_decisions` (proposed write tools), `session` (wiring,
start and end of the call).
"""

from callpilot.server.session.session import CallSession, SessionDeps
from callpilot.server.session.transcripts import ROLE_NAMES

__all__ = ["ROLE_NAMES", "CallSession", "SessionDeps"]
