"""The Callpilot gateway: the HTTP edge for browsers.

It is a client of the server through the public SDK only (no imports of
`callpilot.server`), like any CRM integration would be.
"""
