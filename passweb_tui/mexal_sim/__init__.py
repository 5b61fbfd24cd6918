"""A simulator of the Mexal WebAPI: an ASGI app, demo data and the /sim admin API."""
