"""passweb-tui: keep a Passweb-style e-commerce site in step with a Mexal ERP."""

__version__ = "0.1.0"
