"""Alembic migrations of the site store, applied by `passweb_tui.engine.store` on open."""
