"""The Mexal WebAPI client: settings, errors, value helpers and the httpx client."""
