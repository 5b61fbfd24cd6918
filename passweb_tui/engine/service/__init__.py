"""The sync service behind `passweb-tui serve`: schedules, launch policy, ERP trigger,
order fast path, e-mail of outcomes and the monthly quota."""
