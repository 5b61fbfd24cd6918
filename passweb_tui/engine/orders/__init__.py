"""Orders and customers born on the site: intake, exactly-once push to the ERP,
open-order refresh with a review queue of ERP-side updates."""
