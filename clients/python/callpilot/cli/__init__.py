"""The `callpilot` command."""
