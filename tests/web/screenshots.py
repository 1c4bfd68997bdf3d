"""Where the browser tests put their screenshots.

`docs/screenshots/` holds the pictures the README and docs show, committed.
A test run writes there only with CALLPILOT_UPDATE_SCREENSHOTS=1 (regenerate
them with `CALLPILOT_UPDATE_SCREENSHOTS=1 make test`, then commit), so an
ordinary run leaves the working tree as it found it; otherwise they go to
`artifacts/screenshots/`, next to the tests' other logs.
"""

from __future__ import annotations

import os

from support import ROOT

COMMITTED = ROOT / "docs" / "screenshots"
SCREENSHOTS = (
    COMMITTED if os.environ.get("CALLPILOT_UPDATE_SCREENSHOTS") == "1" else ROOT / "artifacts" / "screenshots"
)
