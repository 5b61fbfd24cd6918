"""Everything that is not UI: the site store, the sync kinds, orders and the ERP client."""
