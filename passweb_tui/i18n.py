"""The one catalogue of the UI's words, in English and Italian, and the choice between them.

Every label and message of the terminal UI is looked up here by key. The ERP's own
words that operators know (Totale, Variati, Parziale, evaso, listino) read the same
in both languages. `missing_keys()` lists keys present in one language only.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping

LANGUAGES = ("en", "it")
DEFAULT_LANGUAGE = "en"

_current = DEFAULT_LANGUAGE

# fmt: off
EN: dict[str, str] = {
    "nav.dashboard": "Dashboard",
    "nav.sync": "Sync",
    "nav.changes": "Changes",
    "nav.categories": "Categories",
    "nav.catalogue": "Catalogue",
    "nav.runs": "Runs",
    "nav.fields": "Fields",
    "nav.orders": "Orders",
    "warn.tls_off": "TLS verification OFF",
    "key.back": "Back",
    "key.help": "Keys",
    "key.quit": "Quit",
    "key.close": "Close",
    "key.palette": "Command palette",
    "keys.title": "Keys that work here",
    "keys.section.screen": "This screen",
    "keys.section.widget": "Where the cursor is",
    "keys.section.table": "In the table",
    "keys.section.tree": "In the tree",
    "keys.section.input": "In the text field",
    "keys.section.list": "In the list",
    "keys.section.choice": "In the choice",
    "keys.section.switch": "On the switch",
    "keys.section.button": "On the button",
    "keys.section.panel": "In the panel",
    "keys.section.app": "Everywhere",
    # the words of the terminal toolkit's own keys, as F1 lists them
    "tx.focus next": "Next field",
    "tx.focus previous": "Previous field",
    "tx.copy selected text": "Copy the selected text",
    "tx.cut selected text": "Cut the selected text",
    "tx.paste text from the clipboard": "Paste from the clipboard",
    "tx.select all": "Select all",
    "tx.cursor up": "Cursor up",
    "tx.cursor down": "Cursor down",
    "tx.cursor left": "Cursor left",
    "tx.cursor right": "Cursor right",
    "tx.up": "Up",
    "tx.down": "Down",
    "tx.first": "First",
    "tx.last": "Last",
    "tx.top": "Top",
    "tx.bottom": "Bottom",
    "tx.home": "Start",
    "tx.end": "End",
    "tx.page up": "Page up",
    "tx.page down": "Page down",
    "tx.page left": "Page left",
    "tx.page right": "Page right",
    "tx.scroll up": "Scroll up",
    "tx.scroll down": "Scroll down",
    "tx.scroll left": "Scroll left",
    "tx.scroll right": "Scroll right",
    "tx.scroll home": "Scroll to the start",
    "tx.scroll end": "Scroll to the end",
    "tx.select": "Select",
    "tx.toggle": "Switch on/off",
    "tx.toggle option": "Switch the option on/off",
    "tx.next option": "Next option",
    "tx.previous option": "Previous option",
    "tx.press button": "Press the button",
    "tx.show menu": "Show the choices",
    "tx.submit": "Confirm",
    "tx.cursor to parent": "To the parent",
    "tx.cursor to next ancestor": "To the next entry one level up",
    "tx.cursor to previous sibling": "To the previous entry of this level",
    "tx.cursor to next sibling": "To the next entry of this level",
    "tx.expand or collapse all": "Expand or collapse all",
    "tx.move cursor left": "Cursor left",
    "tx.move cursor right or accept the completion suggestion": "Cursor right (or take the suggestion)",
    "tx.move cursor left and select": "Select to the left",
    "tx.move cursor right and select": "Select to the right",
    "tx.move cursor left a word": "Previous word",
    "tx.move cursor right a word": "Next word",
    "tx.move cursor left a word and select": "Select the previous word",
    "tx.move cursor right a word and select": "Select the next word",
    "tx.go to start": "To the start",
    "tx.go to end": "To the end",
    "tx.select line start": "Select to the start",
    "tx.select line end": "Select to the end",
    "tx.delete character left": "Delete the character on the left",
    "tx.delete character right": "Delete the character on the right",
    "tx.delete all to the left": "Delete all on the left",
    "tx.delete all to the right": "Delete all on the right",
    "tx.delete left to start of word": "Delete to the start of the word",
    "tx.delete right to start of word": "Delete to the next word",
    "key.down": "Down",
    "key.up": "Up",
    "key.first_row": "First row",
    "key.last_row": "Last row",
    "key.yes": "Yes",
    "key.no": "No",
    "key.reload": "Reload",
    "key.launch_total": "Totale",
    "key.launch_changed": "Variati",
    "key.launch_partial": "Parziale",
    "key.dry_run": "Dry run",
    "key.cancel": "Cancel",
    "key.cancel.tip": "the running sync (asks first)",
    "key.run_changes": "Run's changes",
    "key.run_detail": "Run detail",
    "key.search": "Search",
    "key.history": "Record history",
    "key.switch_pane": "Other pane",
    "key.toggle_entity": "Articles/customers",
    "key.mark": "Mark",
    "key.unmark_all": "Unmark all",
    "key.partial_marked": "Parziale",
    "key.partial_marked.tip": "of the marked records",
    "key.partial_record": "Parziale",
    "key.partial_record.tip": "of this record alone",
    "key.open_record": "Open",
    "col.value": "Value",
    "record.title": "Record",
    "record.heading.articles": "Article {code}",
    "record.heading.customers": "Customer {code}",
    "record.fields": "ERP fields the site uses",
    "record.prices": "Prices",
    "record.orders": "Web orders",
    "key.compare_erp": "Compare with the ERP",
    "key.compare_erp.tip": "a dry-run Parziale of this record: nothing is written",
    "col.erp_now": "ERP now",
    "record.compare_hint": "{compare}: ask the ERP about it (a dry run: nothing is written).",
    "record.erp_asking": "Asking the ERP (a dry-run Parziale of this record)…",
    "record.erp_failed": "The ERP could not be asked: {error}",
    "record.erp_rejected": "ERP: the record would be refused: {reason}",
    "record.erp_off_site": "ERP: not flagged for this site (a Parziale leaves the store as it is; a Totale removes it).",
    "record.erp_new": "ERP: it has this record for the site; {partial} brings it into the store.",
    "record.erp_differs": "ERP now differs in {count} fields: {fields} ({partial} brings them).",
    "record.erp_differs_one": "ERP now differs in 1 field: {fields} ({partial} brings it).",
    "record.erp_same": "ERP now: as stored.",
    "record.conditions": "Particolarita",
    "record.conditions_count": "Particolarita: {count}",
    "record.conditions_of": "{count} customers ({customers})",
    "record.conditions_of_one": "customer {customer}",
    "record.group": "group {code}",
    "col.article_or_group": "Article",
    "col.discount": "Discount",
    "record.missing": "The site store does not hold this record (deleted by a sync?).",
    "record.on_site": "yes",
    "record.off_site": "no (kept, not published)",
    "record.yes": "yes",
    "record.no": "no",
    "record.col.description": "Description",
    "record.col.category": "Category",
    "record.col.published": "On the site",
    "record.col.vat": "VAT",
    "record.col.unit": "Unit",
    "record.col.name": "Name",
    "record.col.vat_number": "VAT number",
    "record.col.tax_code": "Tax code",
    "record.col.email": "E-mail",
    "record.col.city": "City",
    "record.col.price_list": "Price list",
    "record.col.payment": "Payment",
    "record.synced_at": "Stored",
    "record.last_change": "changed by run #{run}, {when}",
    "key.next_page": "Next page",
    "key.prev_page": "Previous page",
    "key.toggle_used": "Use/unuse",
    "key.next_entity": "Next table",
    "key.attribute_update": "Attribute update",
    "key.attribute_update.tip": "(reads the ERP's fields again)",
    "key.test_connection": "Test connection",
    "key.save": "Save",
    "key.demo": "Demo",
    "kind.total": "Totale",
    "kind.changed": "Variati",
    "kind.partial": "Parziale",
    "status.ok": "ok",
    "status.ok_with_rejects": "ok with rejects",
    "status.failed": "failed",
    "status.cancelled": "cancelled",
    "status.running": "running",
    "status.refused": "refused",
    "phase.starting": "starting",
    "phase.attributes": "attribute update",
    "phase.push": "sending web customers and orders",
    "phase.lookups": "lookup tables",
    "phase.articles": "articles",
    "phase.customers": "customers",
    "phase.conditions": "particolarita",
    "phase.categories": "categories",
    "phase.resources": "resources",
    "phase.orders": "web orders",
    "phase.deletions": "deletions",
    "phase.done": "done",
    "entity.articles": "articles",
    "entity.customers": "customers",
    "entity.conditions": "particolarita",
    "entity_one.articles": "article",
    "entity_one.customers": "customer",
    "entity_one.conditions": "particolarita",
    "entity.categories": "categories",
    "entity.price_lists": "listini",
    "entity.currencies": "currencies",
    "entity.payments": "payments",
    "entity.resources": "resources",
    "entity.orders": "web orders",
    "entity.warehouses": "warehouses",
    "entity.discount_categories": "discount categories",
    "entity.article_statistic_categories": "statistic categories",
    "change.inserted": "inserted",
    "change.updated": "updated",
    "change.deleted": "deleted",
    "origin.site": "site",
    "origin.erp": "ERP",
    "origin.scheduler": "scheduler",
    "erp.ok": "connected",
    "erp.unreachable": "unreachable",
    "erp.busy": "busy",
    "erp.auth": "credentials refused",
    "erp.unknown": "not checked yet",
    "erp.failing": "failing",
    "col.price": "Price",
    "col.vat_number": "VAT no.",
    "col.kind": "Kind",
    "col.outcome": "Outcome",
    "col.duration": "Time",
    "col.changes": "Changes",
    "col.rejected": "Rejected",
    "col.started": "Started",
    "col.entity": "Entity",
    "col.field": "Field",
    "col.count": "Count",
    "col.progress": "Done",
    "col.rate": "Rate",
    "col.eta": "ETA",
    "col.key": "Key",
    "col.change": "Change",
    "col.old": "Old",
    "col.new": "New",
    "col.origin": "Origin",
    "col.scope": "Scope",
    "col.fetched": "Fetched",
    "col.inserted": "Inserted",
    "col.updated": "Updated",
    "col.unchanged": "Unchanged",
    "col.off_site": "Off site",
    "col.deleted": "Deleted",
    "col.fetched.short": "Fetched",
    "col.inserted.short": "Ins.",
    "col.updated.short": "Upd.",
    "col.deleted.short": "Del.",
    "col.rejected.short": "Rej.",
    "col.unchanged.short": "Unch.",
    "col.off_site.short": "Off site",
    "col.sent": "sent",
    "col.failed": "failed",
    "col.reason": "Reason",
    "col.code": "Code",
    "col.description": "Description",
    "col.category": "Group",
    "col.vat": "VAT",
    "col.name": "Name",
    "col.city": "City",
    "col.listino": "Listino",
    "col.used": "Used",
    "col.type": "Type",
    "dash.loading": "Reading…",
    "dash.erp_checking": "(asking the ERP…)",
    "dash.chart_changes": "Changes per run",
    "dash.chart_duration": "Duration per run",
    "dash.last_runs": "Last runs",
    "dash.fields_changed": "Fields changed in the last runs",
    "dash.erp": "ERP",
    "dash.erp_version": "Mexal {version}",
    "dash.last_run": "last run #{run}: {status}",
    "dash.last_success": "Last successful sync",
    "dash.never": "never",
    "dash.first_sync": "Press s, then t, for a first Totale.",
    "dash.lease": "Totale/Variati running: {holder}",
    "dash.store": "Site store",
    "dash.articles": "articles",
    "dash.unpublished": "({count} unpublished)",
    "dash.unpublished_one": "(1 unpublished)",
    "dash.customers": "customers",
    "dash.categories": "categories",
    "dash.read_failed": "Could not read the dashboard: {error}",
    "sync.choose": "Kind of sync",
    "sync.dry_run": "Dry run (write nothing)",
    "sync.dry": "(dry run)",
    "sync.scope": "Parziale: entities",
    "sync.codes_hint": "codes, comma separated",
    "sync.use_marked": "marked in catalogue ({count})",
    "sync.launch": "Launch",
    "sync.idle": "No sync launched from here yet. {total} Totale, {changed} Variati, {partial} Parziale.",
    "sync.phase": "phase",
    "sync.cancelling": "cancelling…",
    "sync.busy": "A sync launched from here is still running; wait for it, or cancel it with {cancel} on the sync screen ({sync}).",
    "sync.refused": "Sync refused",
    "sync.quota_question": "Start a {kind}? It counts against the monthly quota: {used} of {quota} used this month.",
    "sync.ended": "{kind} #{run}: {status}",
    "sync.none_running": "No sync is running.",
    "sync.ended_while_asked": "The sync ended by itself before it was cancelled.",
    "sync.cancel_question": "Cancel the running sync? What it wrote so far stays consistent.",
    "sync.marked_one_entity": "Mark records of one entity only (articles or customers) for a Parziale.",
    "sync.codes_need_entity": "Typed codes need exactly one entity: choose it above the codes.",
    "sync.scope_not_used": "{kind} reads everything: the entities and codes chosen are for a {partial} ({key}).",
    "sync.ran_as": "{requested} ran as {kind} (no earlier complete sync).",
    "sync.counts": "Records read {fetched}: {parts}",
    "sync.count.inserted": "new {n}",
    "sync.count.updated": "changed {n}",
    "sync.count.unchanged": "unchanged {n}",
    "sync.count.deleted": "deleted {n}",
    "sync.count.off_site": "not for the site {n}",
    "sync.count.rejected": "rejected {n}",
    "sync.step_done": "{step}: {records} records",
    "sync.step_done_one": "{step}: 1 record",
    "sync.finished": "finished: {status}",
    "sync.error": "Error",
    "sync.links": "{changes}: changes of this run · {detail}: run detail (rejects, error)",
    "sync.dry_links": "A dry run writes no change log: the counts are what it would change · {detail}: run detail (rejects, error)",
    "sync.dry_no_changes": "Run #{run} was a dry run: it wrote nothing, so it has no change log. Its counts say what it would have changed.",
    "sync.dry_would_links": "{changes}: what this dry run would change · {detail}: run detail (rejects, error)",
    "changes.would": "Dry run",
    "changes.would_of": "What dry run #{run} would change ({records} records; nothing written)",
    "filter.run": "run #",
    "filter.entity": "entity",
    "filter.field": "field",
    "filter.key": "key ({search})",
    "filter.fields": "field or description ({search})",
    "changes.per_field": "Changes per field",
    "changes.note_more": "in full in the record's history ({key})",
    "changes.log": "Change log",
    "changes.log_count": "Change log: {count}",
    "changes.first_only": "(newest {count} shown)",
    "changes.history": "Record history",
    "changes.history_of": "History of {key} ({entity})",
    "runs.detail": "Run",
    "runs.counts": "Counts per entity",
    "runs.rejects": "Rejected records",
    "runs.rejects_count": "Rejected records: {count}",
    "runs.requested": "(asked as {kind})",
    "runs.notes": "Notes",
    "runs.not_found": "Run #{run} cannot be read: {error}",
    "runs.pushed_customers": "Web customers",
    "runs.pushed_orders": "Web orders",
    "runs.status": "Runs {first}-{last}, newest first · {next}/{prev} page",
    "runs.status_all": "Runs {first}-{last}, newest first",
    "runs.status_empty": "No runs yet",
    "categories.tree": "Categories",
    "categories.tree_count": "Categories: {count}",
    "categories.loop": "(its parents loop back to it in the ERP)",
    "engine.cancelled by the operator": "cancelled by the operator",
    "engine.no correctly completed sync yet: this CHANGED runs as a TOTAL": "no correctly completed sync yet: this CHANGED runs as a TOTAL",
    "engine.reading the ERP's field catalogue": "reading the ERP's field catalogue",
    "engine.sending waiting customers and orders": "sending waiting customers and orders",
    "engine.re-reading orders open in the ERP": "re-reading orders open in the ERP",
    "engine.article images and sheets": "article images and sheets",
    "categories.root": "All",
    "categories.web": "[web]",
    "categories.articles": "Articles",
    "categories.articles_of": "Articles of {code}: {count}",
    "categories.articles_branch": "Articles of {code} and below: {count}",
    "categories.articles_uncategorised": "Articles in no category: {count}",
    "categories.page_shown": "({first}-{last} shown; {next} next, {prev} back)",
    "categories.uncategorised": "In no category",
    "catalogue.search_hint": "search code or description ({search})",
    "catalogue.unpublished": "not published",
    "catalogue.status": "Rows {first}-{last} · marked {marked} · {open} opens, {mark} marks, {partial} Parziale of the marked",
    "catalogue.status_empty": "No rows · marked {marked} · {partial} Parziale of the marked",
    "catalogue.nothing_marked": "Nothing marked: mark records with {mark} first.",
    "catalogue.partial_started": "Parziale of {count} {entity} started.",
    "catalogue.partial_started_one": "Parziale of 1 {entity_one} started.",
    "fields.entity": "Table",
    "fields.key": "key",
    "fields.status": "{used} of {total} fields used · {toggle} toggles, {update} attribute update",
    "fields.empty": "No fields known yet: run the attribute update ({update}).",
    "fields.key_always_used": "Key fields are always used.",
    "fields.filled_next_sync": "{field} will be filled for every record at the next sync.",
    "fields.dropped_next_sync": "{field} is no longer kept: the next sync drops it from every record, without a change each.",
    "fields.updating": "Attribute update running…",
    "fields.updated": "Attribute update done.",
    "setup.title": "passweb-tui: connect to the ERP",
    "setup.intro": "No ERP is configured yet. Enter the Mexal WebAPI address and credentials, or try the demo with a built-in simulated ERP.",
    "setup.url": "WebAPI URL",
    "setup.user": "User",
    "setup.password": "Password",
    "setup.azienda": "Azienda",
    "setup.anno": "Anno",
    "setup.ca_file": "CA file",
    "setup.test": "Test connection",
    "setup.save": "Save and open",
    "setup.demo": "Demo",
    "setup.testing": "Testing the connection…",
    "setup.saving": "Saving and opening the store…",
    "setup.starting_demo": "Starting the demo ERP…",
    "setup.test_ok": "Connected: ERP version {version}, azienda {azienda}, anno {anno}.",
    "setup.failed": "Failed: {error}",
    "setup.not_saved": "(nothing was saved)",
    "setup.saved_unchecked": "Saved without the ERP's answer: {error}. The dashboard keeps asking it.",
    "setup.cannot_connect": "This app was started without a way to open a store.",
    "setup.needed": "Set up the ERP connection first.",
    "setup.err.url_missing": "WebAPI URL: required.",
    "setup.err.url_form": "WebAPI URL: must start with http:// or https:// and end in /webapi, got {url}",
    "setup.err.url_invalid": "WebAPI URL: {why}",
    "setup.err.invalid": "Not usable: {why}",
    "setup.err.user_missing": "User: required.",
    "setup.err.password_missing": "Password: required.",
    "setup.err.azienda_missing": "Azienda: required.",
    "setup.err.anno": "Anno: a year such as 2026, got {anno}",
    "setup.err.ca_file": "CA file: {path} is not a readable file",
    "confirm.yes": "Yes ({key})",
    "confirm.no": "No ({key})",
    "confirm.ok": "OK",
    "confirm.settled": "({yes}, {no}, enter or escape closes this)",
    "quit.sync_running": "A sync is running. Cancel it and quit?",
    "quit.ended_while_asked": "The sync ended by itself: nothing to cancel. {key} quits.",
    "keymap.did_you_mean": " (did you mean {ids}?)",
    "keymap.unknown": (
        "[ui] keymap: unknown binding id {ids}{hint}. The binding ids are listed in the "
        "README (The terminal UI); F1 shows each screen's keys."
    ),
    "error.background": "{what} failed: {error}",
    "unavailable.generic": "This screen is not available in this version.",
    "unavailable.orders": "Web orders are not available in this version yet.",
    "key.ack": "Acknowledge",
    "key.ack_all": "Acknowledge all",
    "key.ack_all.tip": "the updates shown (asks first)",
    "key.send_now": "Send now",
    "key.resend": "Send again",
    "key.confirm_payment": "Payment arrived",
    "key.cancel_order": "Cancel order",
    "key.open_order": "Open order",
    "orders.view.waiting": "Waiting",
    "orders.view.open": "Open",
    "orders.view.updates": "To review",
    "orders.view.all": "All",
    "orders.search_hint": "search order id or customer ({search})",
    "orders.status": "Rows {first}-{last} · {next}/{prev} page",
    "orders.status_empty": "No rows · {next}/{prev} page",
    "orders.failing": "{count} failed to send",
    "orders.failing_one": "1 failed to send",
    "orders.col.order": "Order",
    "orders.col.created": "Placed",
    "orders.col.customer": "Customer",
    "orders.col.state": "State",
    "orders.col.total": "Total",
    "orders.col.rows": "Rows",
    "orders.col.erp_key": "ERP key",
    "orders.col.erp_key_short": "ERP key",
    "orders.col.error": "Last error",
    "orders.col.detected": "Detected",
    "orders.col.state_before": "State before",
    "orders.col.state_after": "State after",
    "orders.col.what": "What changed",
    "orders.col.article": "Article",
    "orders.col.qty": "Qty",
    "orders.col.fulfilled": "Fulfilled",
    "orders.col.row_state": "Row state",
    "orders.col.discount": "Discount",
    "orders.col.reviewed": "Reviewed",
    "orders.row": "row",
    "orders.row_added": "added",
    "orders.row_removed": "removed",
    "orders.rows": "Rows",
    "orders.in_erp": "In the ERP (linked documents: {links})",
    "orders.header": "Header",
    "orders.history": "History",
    "orders.before": "before",
    "orders.same": "same",
    "orders.panel.title": "Web orders",
    "orders.panel.waiting": "Waiting to send: {count}",
    "orders.panel.failed": "({count} failed to send)",
    "orders.panel.failed_one": "(1 failed to send)",
    "orders.panel.customers": "New customers the ERP did not take: {count}",
    "orders.panel.unconfirmed": "of which waiting for payment: {count}",
    "orders.panel.open": "Open in the ERP: {count}",
    "orders.panel.to_check": "({count} to check)",
    "orders.panel.unreviewed": "ERP updates to review: {count}",
    "orders.after": "after",
    "orders.whole_document": "whole document (first read)",
    "orders.document_gone": "whole document: gone from the ERP",
    "orders.detail": "Web order",
    "orders.update": "ERP update of an order",
    "orders.new_customer": "(new web customer)",
    "orders.matched_customer": "(new on the site, already the ERP's customer)",
    "orders.payment": "Payment",
    "orders.note": "Note",
    "orders.last_error": "Last error",
    # at 80 columns the list's error column shows 14 characters: the key, as footers say it
    "orders.customer_refused": "{key} Fix customer",
    "orders.send_hint": "Waiting to be sent: {send} sends it now (a Parziale of this order).",
    "orders.customer_hint": "Its customer is not in the ERP yet: {key} corrects its details or binds it to a customer the ERP has.",
    "orders.customer_of_erp": "Order {order} is for the ERP customer {code}: there is no web customer to correct.",
    "orders.customer_in_erp": "The customer of order {order} is in the ERP already, as {code}.",
    "key.customer": "Customer",
    "key.bind": "Bind",
    "customer.title": "Web customer of order {order}",
    "customer.intro": "Not in the ERP yet: correct what the ERP refused, and the next push sends it with its orders; or bind it to the code of a customer the ERP has.",
    "customer.name": "Name",
    "customer.vat_number": "VAT number",
    "customer.tax_code": "Tax code",
    "customer.email": "E-mail",
    "customer.address": "Address",
    "customer.zip": "ZIP code",
    "customer.city": "City",
    "customer.province": "Province",
    "customer.country": "Country",
    "customer.erp_code": "ERP code",
    "customer.erp_code_hint": "to bind it to, e.g. 501.00042",
    "customer.save": "Save {key}",
    "customer.bind": "Bind to the ERP code {key}",
    "customer.close": "Close {key}",
    "customer.unchanged": "Nothing changed: correct a detail first.",
    "customer.discard_question": "Close without saving what you changed ({details})?",
    "customer.no_code": "Type the code of the ERP customer to bind to (like 501.00042).",
    "customer.bind_or_save": "Details were changed: save them ({save}) or undo them; binding takes the ERP's customer as it is.",
    "customer.saving": "Checking and saving…",
    "customer.binding": "Looking for {code} in the ERP…",
    "customer.bind_question": "Bind the customer of order {order} to the ERP customer {code}?\n{who}\nIts orders go under that code at the next push.",
    "customer.no_such_erp": "The ERP has no customer {code}: check the code.",
    "customer.vat": "VAT {vat}",
    "customer.tax_code_short": "tax code {code}",
    "customer.saved": "Customer of order {order} corrected: the next push sends it with its orders.",
    "customer.bound": "Customer of order {order} bound to the ERP customer {code}: its orders go under that code at the next push.",
    "customer.failed": "The ERP could not be asked: {error}",
    "orders.attempt": "sending attempt",
    "orders.decision": "operator",
    "orders.state.new": "New",
    "orders.state.payment_unconfirmed": "Payment not confirmed",
    "orders.state.stored": "Stored",
    "orders.state.modified": "Modified",
    "orders.state.partially_fulfilled": "Partly fulfilled",
    "orders.state.suspended": "Suspended",
    "orders.state.modified_cancelled": "Modified-cancelled",
    "orders.state.to_check": "To check",
    "orders.state.fulfilled": "Fulfilled",
    "orders.state.delivered": "Delivered",
    "orders.state.invoiced": "Invoiced",
    "orders.state.transformed": "Transformed",
    "orders.state.cancelled": "Cancelled",
    "orders.payment.confirmed": "confirmed",
    "orders.payment.unconfirmed": "not confirmed",
    "orders.outcome.sending": "being sent",
    "orders.outcome.created": "created",
    "orders.outcome.found": "found already in the ERP",
    "orders.outcome.matched": "the ERP's customer already",
    "orders.outcome.operator": "bound by the operator",
    "orders.outcome.resent": "put back in the queue",
    "orders.outcome.paid": "payment confirmed",
    "orders.outcome.cancelled": "cancelled, not to be sent",
    "orders.outcome.failed": "failed",
    "orders.outcome.uncertain": "outcome unknown",
    "orders.outcome.deferred": "put off",
    "orders.sent_at": "Sent",
    "orders.refreshed_at": "Last read from the ERP",
    "orders.updates_count": "ERP updates: {count}",
    "orders.reviewed_at": "reviewed {when}",
    "orders.to_review": "to review: {ack} acknowledges",
    "orders.site_edit": "Site edit overridden by the ERP",
    "orders.not_found": "Order {order} cannot be read: {error}",
    "orders.not_waiting": "Order {order} is not waiting to be sent (it is {state}).",
    "orders.not_to_check": "Order {order} is {state}: only an order whose ERP document is gone (To check) is sent again.",
    "orders.resend_question": "Order {order}: the ERP no longer has its document. Put it back in the queue, to be sent again? Before it is sent, the ERP is searched once more for a document with its marker, so it is never entered twice.",
    "orders.resending": "Looking in the ERP for order {order}...",
    "orders.resent": "Order {order} waits to be sent again: {send} sends it now.",
    "orders.resend_hint": "The ERP no longer has its document: {key} puts it back in the queue, to be sent again.",
    "orders.payment_unconfirmed": "Order {order} waits for its payment to be confirmed; it is not sent before.",
    "orders.payment_hint": "Waiting for its payment: {key} confirms it arrived, and the order then waits to be sent.",
    "orders.payment_question": "The payment of order {order} arrived? The order then waits to be sent to the ERP.",
    "orders.payment_confirmed": "Order {order}: payment confirmed; {send} sends it now.",
    "orders.payment_not_awaited": "Order {order} is {state}: it is not waiting for its payment.",
    "orders.not_cancellable": "Order {order} is {state}: only an order not in the ERP is cancelled here; one in the ERP is cancelled there.",
    "orders.cancel_question": "Cancel order {order} for good? It will never be sent to the ERP. If a push may have sent it, the ERP is searched first for a document with its marker.",
    "orders.cancelling": "Looking in the ERP for order {order}...",
    "orders.cancelled_done": "Order {order} is cancelled: it will not be sent.",
    "orders.sending": "Parziale of order {order} started.",
    "orders.ack_all_question": "Acknowledge the {count} updates shown?",
    "orders.ack_all_question_one": "Acknowledge the update shown?",
    "orders.acked": "{count} updates acknowledged.",
    "orders.acked_one": "1 update acknowledged.",
    "orders.ack_unknown": "Unknown updates, not acknowledged: {ids}",
    "orders.ack_failed": "Acknowledging updates",
    "palette.sync.total": "Sync: total",
    "palette.sync.changed": "Sync: changed",
    "palette.sync.partial": "Sync: partial",
    "palette.sync.cancel": "Sync: cancel",
    "palette.sync.total.help": "Launch a Totale: every record flagged for the site",
    "palette.sync.changed.help": "Launch a Variati: what changed since the last complete sync",
    "palette.sync.partial.help": "Open the launcher to choose a Parziale's scope",
    "palette.sync.cancel.help": "Cancel the running sync (asks first)",
    "palette.goto.dashboard": "Go to: dashboard",
    "palette.goto.orders": "Go to: orders",
    "palette.goto.changes": "Go to: changes",
    "palette.goto.categories": "Go to: categories",
    "palette.goto.catalogue": "Go to: catalogue",
    "palette.goto.runs": "Go to: runs",
    "palette.goto.fields": "Go to: fields",
    "palette.goto.dashboard.help": "ERP state, last runs, fields changed",
    "palette.goto.orders.help": "Web orders and ERP updates to review",
    "palette.goto.changes.help": "The change log, by run, entity, field, key",
    "palette.goto.categories.help": "The category tree and its articles",
    "palette.goto.catalogue.help": "Articles and customers; mark some for a Parziale",
    "palette.goto.runs.help": "Run history and detail",
    "palette.goto.fields.help": "The ERP's fields and which the site uses",
    "palette.keys": "Keys",
    "palette.keys.help": "The keys that work on this screen (F1)",
    "palette.minimize": "Minimize",
    "palette.minimize.help": "Back to the normal size of the widget",
    "palette.maximize": "Maximize",
    "palette.maximize.help": "The focused widget on the whole screen",
    "palette.theme": "Theme",
    "palette.theme.help": "Change the colours",
    "palette.screenshot": "Screenshot",
    "palette.screenshot.help": "Save an SVG picture of the screen in {folder}",
    "palette.quit": "Quit",
    "palette.quit.help": "Leave passweb-tui (asks first while a sync runs)",
    "palette.placeholder": "Search for commands…",
    "palette.themes": "Search for themes…",
    "screenshot.saved": "Screenshot saved: {path}",
    "screenshot.failed": "Screenshot not saved in {folder}: {why}",
}

IT: dict[str, str] = {
    "nav.dashboard": "Cruscotto",
    "nav.sync": "Sincronizza",
    "nav.changes": "Variazioni",
    "nav.categories": "Categorie",
    "nav.catalogue": "Catalogo",
    "nav.runs": "Esecuzioni",
    "nav.fields": "Campi",
    "nav.orders": "Ordini",
    "warn.tls_off": "verifica TLS DISATTIVATA",
    "key.back": "Indietro",
    "key.help": "Tasti",
    "key.quit": "Esci",
    "key.close": "Chiudi",
    "key.palette": "Palette dei comandi",
    "keys.title": "Tasti attivi qui",
    "keys.section.screen": "Questa schermata",
    "keys.section.widget": "Dove si trova il cursore",
    "keys.section.table": "Nella tabella",
    "keys.section.tree": "Nell'albero",
    "keys.section.input": "Nel campo di testo",
    "keys.section.list": "Nell'elenco",
    "keys.section.choice": "Nella scelta",
    "keys.section.switch": "Sull'interruttore",
    "keys.section.button": "Sul pulsante",
    "keys.section.panel": "Nel riquadro",
    "keys.section.app": "Ovunque",
    # the words of the terminal toolkit's own keys, as F1 lists them
    "tx.focus next": "Campo seguente",
    "tx.focus previous": "Campo precedente",
    "tx.copy selected text": "Copia il testo selezionato",
    "tx.cut selected text": "Taglia il testo selezionato",
    "tx.paste text from the clipboard": "Incolla dagli appunti",
    "tx.select all": "Seleziona tutto",
    "tx.cursor up": "Cursore su",
    "tx.cursor down": "Cursore giù",
    "tx.cursor left": "Cursore a sinistra",
    "tx.cursor right": "Cursore a destra",
    "tx.up": "Su",
    "tx.down": "Giù",
    "tx.first": "Primo",
    "tx.last": "Ultimo",
    "tx.top": "In cima",
    "tx.bottom": "In fondo",
    "tx.home": "Inizio",
    "tx.end": "Fine",
    "tx.page up": "Pagina su",
    "tx.page down": "Pagina giù",
    "tx.page left": "Pagina a sinistra",
    "tx.page right": "Pagina a destra",
    "tx.scroll up": "Scorri su",
    "tx.scroll down": "Scorri giù",
    "tx.scroll left": "Scorri a sinistra",
    "tx.scroll right": "Scorri a destra",
    "tx.scroll home": "Scorri all'inizio",
    "tx.scroll end": "Scorri alla fine",
    "tx.select": "Seleziona",
    "tx.toggle": "Attiva/disattiva",
    "tx.toggle option": "Attiva/disattiva l'opzione",
    "tx.next option": "Opzione seguente",
    "tx.previous option": "Opzione precedente",
    "tx.press button": "Premi il pulsante",
    "tx.show menu": "Mostra le scelte",
    "tx.submit": "Conferma",
    "tx.cursor to parent": "Al livello superiore",
    "tx.cursor to next ancestor": "Alla voce seguente del livello superiore",
    "tx.cursor to previous sibling": "Alla voce precedente dello stesso livello",
    "tx.cursor to next sibling": "Alla voce seguente dello stesso livello",
    "tx.expand or collapse all": "Espandi o comprimi tutto",
    "tx.move cursor left": "Cursore a sinistra",
    "tx.move cursor right or accept the completion suggestion": "Cursore a destra (o accetta il suggerimento)",
    "tx.move cursor left and select": "Seleziona a sinistra",
    "tx.move cursor right and select": "Seleziona a destra",
    "tx.move cursor left a word": "Parola precedente",
    "tx.move cursor right a word": "Parola seguente",
    "tx.move cursor left a word and select": "Seleziona la parola precedente",
    "tx.move cursor right a word and select": "Seleziona la parola seguente",
    "tx.go to start": "All'inizio",
    "tx.go to end": "Alla fine",
    "tx.select line start": "Seleziona fino all'inizio",
    "tx.select line end": "Seleziona fino alla fine",
    "tx.delete character left": "Cancella il carattere a sinistra",
    "tx.delete character right": "Cancella il carattere a destra",
    "tx.delete all to the left": "Cancella tutto a sinistra",
    "tx.delete all to the right": "Cancella tutto a destra",
    "tx.delete left to start of word": "Cancella fino all'inizio della parola",
    "tx.delete right to start of word": "Cancella fino alla parola seguente",
    "key.down": "Giù",
    "key.up": "Su",
    "key.first_row": "Prima riga",
    "key.last_row": "Ultima riga",
    "key.yes": "Sì",
    "key.no": "No",
    "key.reload": "Ricarica",
    "key.launch_total": "Totale",
    "key.launch_changed": "Variati",
    "key.launch_partial": "Parziale",
    "key.dry_run": "Prova",
    "key.cancel": "Annulla",
    "key.cancel.tip": "la sincronizzazione in corso (chiede conferma)",
    "key.run_changes": "Variazioni esecuzione",
    "key.run_detail": "Dettaglio esecuzione",
    "key.search": "Cerca",
    "key.history": "Storia record",
    "key.switch_pane": "Altro riquadro",
    "key.toggle_entity": "Articoli/clienti",
    "key.mark": "Segna",
    "key.unmark_all": "Togli segni",
    "key.partial_marked": "Parziale",
    "key.partial_marked.tip": "dei record segnati",
    "key.partial_record": "Parziale",
    "key.partial_record.tip": "di questo record soltanto",
    "key.open_record": "Apri",
    "col.value": "Valore",
    "record.title": "Scheda",
    "record.heading.articles": "Articolo {code}",
    "record.heading.customers": "Cliente {code}",
    "record.fields": "Campi del gestionale usati dal sito",
    "record.prices": "Prezzi",
    "record.orders": "Ordini web",
    "key.compare_erp": "Confronta col gestionale",
    "key.compare_erp.tip": "un Parziale di prova di questo record: nulla è scritto",
    "col.erp_now": "Gestionale ora",
    "record.compare_hint": "{compare}: chiedi al gestionale (una prova: nulla è scritto).",
    "record.erp_asking": "Chiedo al gestionale (un Parziale di prova di questo record)…",
    "record.erp_failed": "Impossibile chiedere al gestionale: {error}",
    "record.erp_rejected": "Gestionale: il record sarebbe scartato: {reason}",
    "record.erp_off_site": "Gestionale: non segnato per questo sito (un Parziale lascia l'archivio com'è; un Totale lo toglie).",
    "record.erp_new": "Gestionale: ha questo record per il sito; {partial} lo porta in archivio.",
    "record.erp_differs": "Il gestionale ora differisce in {count} campi: {fields} ({partial} li porta).",
    "record.erp_differs_one": "Il gestionale ora differisce in 1 campo: {fields} ({partial} lo porta).",
    "record.erp_same": "Gestionale ora: come in archivio.",
    "record.conditions": "Particolarità",
    "record.conditions_count": "Particolarità: {count}",
    "record.conditions_of": "{count} clienti ({customers})",
    "record.conditions_of_one": "cliente {customer}",
    "record.group": "gruppo {code}",
    "col.article_or_group": "Articolo",
    "col.discount": "Sconto",
    "record.missing": "L'archivio del sito non ha questo record (cancellato da una sinc.?).",
    "record.on_site": "sì",
    "record.off_site": "no (tenuto, non pubblicato)",
    "record.yes": "sì",
    "record.no": "no",
    "record.col.description": "Descrizione",
    "record.col.category": "Categoria",
    "record.col.published": "Sul sito",
    "record.col.vat": "IVA",
    "record.col.unit": "Unità",
    "record.col.name": "Ragione sociale",
    "record.col.vat_number": "Partita IVA",
    "record.col.tax_code": "Codice fiscale",
    "record.col.email": "E-mail",
    "record.col.city": "Città",
    "record.col.price_list": "Listino",
    "record.col.payment": "Pagamento",
    "record.synced_at": "Memorizzato",
    "record.last_change": "variato dall'esecuzione #{run}, {when}",
    "key.next_page": "Pagina seguente",
    "key.prev_page": "Pagina precedente",
    "key.toggle_used": "Usa/non usare",
    "key.next_entity": "Altra tabella",
    "key.attribute_update": "Agg. attributi",
    "key.attribute_update.tip": "(aggiornamento attributi: rilegge i campi dal gestionale)",
    "key.test_connection": "Prova connessione",
    "key.save": "Salva",
    "key.demo": "Demo",
    "kind.total": "Totale",
    "kind.changed": "Variati",
    "kind.partial": "Parziale",
    "status.ok": "ok",
    "status.ok_with_rejects": "ok con scarti",
    "status.failed": "fallita",
    "status.cancelled": "annullata",
    "status.running": "in corso",
    "status.refused": "rifiutata",
    "phase.starting": "avvio",
    "phase.attributes": "aggiornamento attributi",
    "phase.push": "invio clienti e ordini web",
    "phase.lookups": "tabelle",
    "phase.articles": "articoli",
    "phase.customers": "clienti",
    "phase.conditions": "particolarità",
    "phase.categories": "categorie",
    "phase.resources": "risorse",
    "phase.orders": "ordini web",
    "phase.deletions": "cancellazioni",
    "phase.done": "fine",
    "entity.articles": "articoli",
    "entity.customers": "clienti",
    "entity.conditions": "particolarità",
    "entity_one.articles": "articolo",
    "entity_one.customers": "cliente",
    "entity_one.conditions": "particolarità",
    "entity.categories": "categorie",
    "entity.price_lists": "listini",
    "entity.currencies": "valute",
    "entity.payments": "pagamenti",
    "entity.resources": "risorse",
    "entity.orders": "ordini web",
    "entity.warehouses": "magazzini",
    "entity.discount_categories": "categorie sconto",
    "entity.article_statistic_categories": "categorie statistiche",
    "change.inserted": "inserito",
    "change.updated": "modificato",
    "change.deleted": "cancellato",
    "origin.site": "sito",
    "origin.erp": "gestionale",
    "origin.scheduler": "pianificatore",
    "erp.ok": "connesso",
    "erp.unreachable": "non raggiungibile",
    "erp.busy": "occupato",
    "erp.auth": "credenziali rifiutate",
    "erp.unknown": "non ancora verificato",
    "erp.failing": "in errore",
    "col.price": "Prezzo",
    "col.vat_number": "P. IVA",
    "col.kind": "Tipo",
    "col.outcome": "Esito",
    "col.duration": "Durata",
    "col.changes": "Variaz.",
    "col.rejected": "Scartati",
    "col.started": "Inizio",
    "col.entity": "Entità",
    "col.field": "Campo",
    "col.count": "Numero",
    "col.progress": "Fatti",
    "col.rate": "Velocità",
    "col.eta": "Fine tra",
    "col.key": "Chiave",
    "col.change": "Variazione",
    "col.old": "Prima",
    "col.new": "Dopo",
    "col.origin": "Origine",
    "col.scope": "Ambito",
    "col.fetched": "Letti",
    "col.inserted": "Inseriti",
    "col.updated": "Modificati",
    "col.unchanged": "Invariati",
    "col.off_site": "Non per il sito",
    "col.deleted": "Cancellati",
    "col.fetched.short": "Letti",
    "col.inserted.short": "Ins.",
    "col.updated.short": "Mod.",
    "col.deleted.short": "Canc.",
    "col.rejected.short": "Scart.",
    "col.unchanged.short": "Invar.",
    "col.off_site.short": "Non sito",
    "col.sent": "inviati",
    "col.failed": "falliti",
    "col.reason": "Motivo",
    "col.code": "Codice",
    "col.description": "Descrizione",
    "col.category": "Gruppo",
    "col.vat": "IVA",
    "col.name": "Ragione sociale",
    "col.city": "Località",
    "col.listino": "Listino",
    "col.used": "Usato",
    "col.type": "Tipo",
    "dash.loading": "Lettura…",
    "dash.erp_checking": "(verifica in corso…)",
    "dash.chart_changes": "Variazioni per esecuzione",
    "dash.chart_duration": "Durata per esecuzione",
    "dash.last_runs": "Ultime esecuzioni",
    "dash.fields_changed": "Campi variati nelle ultime esecuzioni",
    "dash.erp": "Gestionale",
    "dash.erp_version": "Mexal {version}",
    "dash.last_run": "ultima esecuzione #{run}: {status}",
    "dash.last_success": "Ultima sinc. riuscita",
    "dash.never": "mai",
    "dash.first_sync": "Premi s, poi t, per un primo Totale.",
    "dash.lease": "Totale/Variati in corso: {holder}",
    "dash.store": "Archivio sito",
    "dash.articles": "articoli",
    "dash.unpublished": "({count} non pubblicati)",
    "dash.unpublished_one": "(1 non pubblicato)",
    "dash.customers": "clienti",
    "dash.categories": "categorie",
    "dash.read_failed": "Impossibile leggere il cruscotto: {error}",
    "sync.choose": "Tipo di sincronizzazione",
    "sync.dry_run": "Prova (non scrive nulla)",
    "sync.dry": "(prova)",
    "sync.scope": "Parziale: entità",
    "sync.codes_hint": "codici separati da virgola",
    "sync.use_marked": "segnati nel catalogo ({count})",
    "sync.launch": "Avvia",
    "sync.idle": "Nessuna sincronizzazione avviata da qui. {total} Totale, {changed} Variati, {partial} Parziale.",
    "sync.phase": "fase",
    "sync.cancelling": "annullamento…",
    "sync.busy": "Una sincronizzazione avviata da qui è ancora in corso: attendi, o annullala con {cancel} nella schermata di sincronizzazione ({sync}).",
    "sync.refused": "Sincronizzazione rifiutata",
    "sync.quota_question": "Avviare un {kind}? Conta nella quota mensile: {used} di {quota} usate questo mese.",
    "sync.ended": "{kind} #{run}: {status}",
    "sync.none_running": "Nessuna sincronizzazione in corso.",
    "sync.ended_while_asked": "La sincronizzazione è finita da sola prima di essere annullata.",
    "sync.cancel_question": "Annullare la sincronizzazione in corso? Quanto già scritto resta coerente.",
    "sync.marked_one_entity": "Per un Parziale segna record di una sola entità (articoli o clienti).",
    "sync.codes_need_entity": "I codici scritti richiedono una sola entità: sceglila sopra i codici.",
    "sync.scope_not_used": "{kind} legge tutto: le entità e i codici scelti valgono per un {partial} ({key}).",
    "sync.ran_as": "{requested} eseguito come {kind} (nessuna sincronizzazione completa prima).",
    "sync.counts": "Record letti {fetched}: {parts}",
    "sync.count.inserted": "nuovi {n}",
    "sync.count.updated": "variati {n}",
    "sync.count.unchanged": "invariati {n}",
    "sync.count.deleted": "cancellati {n}",
    "sync.count.off_site": "non per il sito {n}",
    "sync.count.rejected": "scartati {n}",
    "sync.step_done": "{step}: {records} record",
    "sync.step_done_one": "{step}: 1 record",
    "sync.finished": "fine: {status}",
    "sync.error": "Errore",
    "sync.links": "{changes}: variazioni dell'esecuzione · {detail}: dettaglio (scarti, errore)",
    "sync.dry_links": "Una prova non registra variazioni: i conteggi dicono cosa cambierebbe · {detail}: dettaglio (scarti, errore)",
    "sync.dry_no_changes": "L'esecuzione #{run} era una prova: non ha scritto nulla, quindi non ha variazioni registrate. I suoi conteggi dicono cosa avrebbe cambiato.",
    "sync.dry_would_links": "{changes}: cosa cambierebbe questa prova · {detail}: dettaglio (scarti, errore)",
    "changes.would": "Prova",
    "changes.would_of": "Cosa cambierebbe la prova #{run} ({records} record; nulla scritto)",
    "filter.run": "esecuzione #",
    "filter.entity": "entità",
    "filter.field": "campo",
    "filter.key": "chiave ({search})",
    "filter.fields": "campo o descrizione ({search})",
    "changes.per_field": "Variazioni per campo",
    "changes.note_more": "per intero nella storia del record ({key})",
    "changes.log": "Registro variazioni",
    "changes.log_count": "Registro variazioni: {count}",
    "changes.first_only": "(mostrate le {count} più recenti)",
    "changes.history": "Storia del record",
    "changes.history_of": "Storia di {key} ({entity})",
    "runs.detail": "Esecuzione",
    "runs.counts": "Conteggi per entità",
    "runs.rejects": "Record scartati",
    "runs.rejects_count": "Record scartati: {count}",
    "runs.requested": "(richiesto come {kind})",
    "runs.notes": "Note",
    "runs.not_found": "Impossibile leggere l'esecuzione #{run}: {error}",
    "runs.pushed_customers": "Clienti web",
    "runs.pushed_orders": "Ordini web",
    "runs.status": "Esecuzioni {first}-{last}, dalla più recente · {next}/{prev} pagina",
    "runs.status_all": "Esecuzioni {first}-{last}, dalla più recente",
    "runs.status_empty": "Ancora nessuna esecuzione",
    "categories.tree": "Categorie",
    "categories.tree_count": "Categorie: {count}",
    "categories.loop": "(i suoi padri nel gestionale tornano a lei)",
    "engine.cancelled by the operator": "annullata dall'operatore",
    "engine.no correctly completed sync yet: this CHANGED runs as a TOTAL": "nessuna sincronizzazione ancora completata: questo Variati si esegue come Totale",
    "engine.reading the ERP's field catalogue": "lettura del catalogo dei campi del gestionale",
    "engine.sending waiting customers and orders": "invio dei clienti e degli ordini in attesa",
    "engine.re-reading orders open in the ERP": "rilettura degli ordini aperti nel gestionale",
    "engine.article images and sheets": "immagini e schede degli articoli",
    "categories.root": "Tutte",
    "categories.web": "[web]",
    "categories.articles": "Articoli",
    "categories.articles_of": "Articoli di {code}: {count}",
    "categories.articles_branch": "Articoli di {code} e sotto: {count}",
    "categories.articles_uncategorised": "Articoli senza categoria: {count}",
    "categories.page_shown": "({first}-{last} mostrati; {next} avanti, {prev} indietro)",
    "categories.uncategorised": "Senza categoria",
    "catalogue.search_hint": "cerca codice o descrizione ({search})",
    "catalogue.unpublished": "non pubblicato",
    "catalogue.status": "Righe {first}-{last} · segnati {marked} · {open} apre, {mark} segna, {partial} Parziale dei segnati",
    "catalogue.status_empty": "Nessuna riga · segnati {marked} · {partial} Parziale dei segnati",
    "catalogue.nothing_marked": "Nessun record segnato: segnali prima con {mark}.",
    "catalogue.partial_started": "Parziale di {count} {entity} avviato.",
    "catalogue.partial_started_one": "Parziale di 1 {entity_one} avviato.",
    "fields.entity": "Tabella",
    "fields.key": "chiave",
    "fields.status": "{used} di {total} campi usati · {toggle} cambia, {update} aggiornamento attributi",
    "fields.empty": "Nessun campo noto: esegui l'aggiornamento attributi ({update}).",
    "fields.key_always_used": "I campi chiave sono sempre usati.",
    "fields.filled_next_sync": "{field} sarà riempito per tutti i record alla prossima sincronizzazione.",
    "fields.dropped_next_sync": "{field} non è più tenuto: la prossima sincronizzazione lo toglie da tutti i record, senza una modifica per ciascuno.",
    "fields.updating": "Aggiornamento attributi in corso…",
    "fields.updated": "Aggiornamento attributi completato.",
    "setup.title": "passweb-tui: connessione al gestionale",
    "setup.intro": "Nessun gestionale configurato. Inserisci indirizzo e credenziali della WebAPI Mexal, oppure prova la demo con un gestionale simulato.",
    "setup.url": "URL WebAPI",
    "setup.user": "Utente",
    "setup.password": "Password",
    "setup.azienda": "Azienda",
    "setup.anno": "Anno",
    "setup.ca_file": "File CA",
    "setup.test": "Prova connessione",
    "setup.save": "Salva e apri",
    "setup.demo": "Demo",
    "setup.testing": "Prova della connessione…",
    "setup.saving": "Salvataggio e apertura archivio…",
    "setup.starting_demo": "Avvio del gestionale demo…",
    "setup.test_ok": "Connesso: gestionale versione {version}, azienda {azienda}, anno {anno}.",
    "setup.failed": "Non riuscito: {error}",
    "setup.not_saved": "(non è stato salvato nulla)",
    "setup.saved_unchecked": "Salvato senza la risposta del gestionale: {error}. La dashboard continua a interpellarlo.",
    "setup.cannot_connect": "L'app è stata avviata senza modo di aprire un archivio.",
    "setup.needed": "Configura prima la connessione al gestionale.",
    "setup.err.url_missing": "URL WebAPI: obbligatorio.",
    "setup.err.url_form": "URL WebAPI: deve iniziare con http:// o https:// e finire con /webapi, non {url}",
    "setup.err.url_invalid": "URL WebAPI: {why}",
    "setup.err.invalid": "Non utilizzabile: {why}",
    "setup.err.user_missing": "Utente: obbligatorio.",
    "setup.err.password_missing": "Password: obbligatoria.",
    "setup.err.azienda_missing": "Azienda: obbligatoria.",
    "setup.err.anno": "Anno: un anno come 2026, non {anno}",
    "setup.err.ca_file": "File CA: {path} non è un file leggibile",
    "confirm.yes": "Sì ({key})",
    "confirm.no": "No ({key})",
    "confirm.ok": "OK",
    "confirm.settled": "({yes}, {no}, invio o esc chiude)",
    "quit.sync_running": "Una sincronizzazione è in corso. Annullarla e uscire?",
    "quit.ended_while_asked": "La sincronizzazione è finita da sola: nulla da annullare. {key} esce.",
    "keymap.did_you_mean": " (forse {ids}?)",
    "keymap.unknown": (
        "[ui] keymap: id di tasto sconosciuto {ids}{hint}. Gli id sono elencati nel "
        "README (The terminal UI); F1 mostra i tasti di ogni schermata."
    ),
    "error.background": "{what} non riuscito: {error}",
    "unavailable.generic": "Questa schermata non è disponibile in questa versione.",
    "unavailable.orders": "Gli ordini web non sono ancora disponibili in questa versione.",
    "key.ack": "Visto",
    "key.ack_all": "Visti tutti",
    "key.ack_all.tip": "gli aggiornamenti mostrati (chiede conferma)",
    "key.send_now": "Invia ora",
    "key.resend": "Rinvia",
    "key.confirm_payment": "Pagamento arrivato",
    "key.cancel_order": "Annulla ordine",
    "key.open_order": "Apri ordine",
    "orders.view.waiting": "Da inviare",
    "orders.view.open": "Aperti",
    "orders.view.updates": "Da rivedere",
    "orders.view.all": "Tutti",
    "orders.search_hint": "cerca numero ordine o cliente ({search})",
    "orders.status": "Righe {first}-{last} · {next}/{prev} pagina",
    "orders.status_empty": "Nessuna riga · {next}/{prev} pagina",
    "orders.failing": "{count} non inviati per errore",
    "orders.failing_one": "1 non inviato per errore",
    "orders.col.order": "Ordine",
    "orders.col.created": "Inserito",
    "orders.col.customer": "Cliente",
    "orders.col.state": "Stato",
    "orders.col.total": "Totale",
    "orders.col.rows": "Righe",
    "orders.col.erp_key": "Chiave gestionale",
    "orders.col.erp_key_short": "Documento",
    "orders.col.error": "Ultimo errore",
    "orders.col.detected": "Rilevato",
    "orders.col.state_before": "Stato prima",
    "orders.col.state_after": "Stato dopo",
    "orders.col.what": "Cosa è cambiato",
    "orders.col.article": "Articolo",
    "orders.col.qty": "Q.tà",
    "orders.col.fulfilled": "Evasa",
    "orders.col.row_state": "Stato riga",
    "orders.col.discount": "Sconto",
    "orders.col.reviewed": "Visto",
    "orders.row": "riga",
    "orders.row_added": "aggiunta",
    "orders.row_removed": "tolta",
    "orders.rows": "Righe",
    "orders.in_erp": "Nel gestionale (documenti collegati: {links})",
    "orders.header": "Testata",
    "orders.history": "Storia",
    "orders.before": "prima",
    "orders.same": "uguale",
    "orders.panel.title": "Ordini web",
    "orders.panel.waiting": "Da inviare: {count}",
    "orders.panel.failed": "({count} non inviati per errore)",
    "orders.panel.failed_one": "(1 non inviato per errore)",
    "orders.panel.customers": "Nuovi clienti non presi dal gestionale: {count}",
    "orders.panel.unconfirmed": "di cui in attesa di pagamento: {count}",
    "orders.panel.open": "Aperti nel gestionale: {count}",
    "orders.panel.to_check": "({count} da verificare)",
    "orders.panel.unreviewed": "Aggiornamenti da rivedere: {count}",
    "orders.after": "dopo",
    "orders.whole_document": "documento intero (prima lettura)",
    "orders.document_gone": "documento intero: non più nel gestionale",
    "orders.detail": "Ordine web",
    "orders.update": "Aggiornamento dal gestionale",
    "orders.new_customer": "(nuovo cliente web)",
    "orders.matched_customer": "(nuovo sul sito, già cliente del gestionale)",
    "orders.payment": "Pagamento",
    "orders.note": "Nota",
    "orders.last_error": "Ultimo errore",
    "orders.customer_refused": "{key} Correggi cliente",
    "orders.send_hint": "In attesa di invio: {send} lo invia ora (Parziale di questo ordine).",
    "orders.customer_hint": "Il cliente non è ancora nel gestionale: {key} ne corregge i dati o lo collega a un cliente del gestionale.",
    "orders.customer_of_erp": "L'ordine {order} è del cliente del gestionale {code}: non c'è un cliente web da correggere.",
    "orders.customer_in_erp": "Il cliente dell'ordine {order} è già nel gestionale, come {code}.",
    "key.customer": "Cliente",
    "key.bind": "Collega",
    "customer.title": "Cliente web dell'ordine {order}",
    "customer.intro": "Non ancora nel gestionale: correggi quel che ha rifiutato, e il prossimo invio lo manda con i suoi ordini; oppure collegalo al codice di un cliente del gestionale.",
    "customer.name": "Ragione sociale",
    "customer.vat_number": "Partita IVA",
    "customer.tax_code": "Codice fiscale",
    "customer.email": "E-mail",
    "customer.address": "Indirizzo",
    "customer.zip": "CAP",
    "customer.city": "Località",
    "customer.province": "Provincia",
    "customer.country": "Nazione",
    "customer.erp_code": "Codice gestionale",
    "customer.erp_code_hint": "a cui collegarlo, es. 501.00042",
    "customer.save": "Salva {key}",
    "customer.bind": "Collega al codice {key}",
    "customer.close": "Chiudi {key}",
    "customer.unchanged": "Nulla è cambiato: correggi prima un dato.",
    "customer.discard_question": "Chiudere senza salvare ciò che hai cambiato ({details})?",
    "customer.no_code": "Scrivi il codice del cliente del gestionale da collegare (come 501.00042).",
    "customer.bind_or_save": "Alcuni dati sono cambiati: salvali ({save}) o annulla le modifiche; il collegamento prende il cliente del gestionale così com'è.",
    "customer.saving": "Controllo e salvataggio…",
    "customer.binding": "Ricerca di {code} nel gestionale…",
    "customer.bind_question": "Collegare il cliente dell'ordine {order} al cliente del gestionale {code}?\n{who}\nI suoi ordini vanno sotto quel codice al prossimo invio.",
    "customer.no_such_erp": "Il gestionale non ha il cliente {code}: controlla il codice.",
    "customer.vat": "P.IVA {vat}",
    "customer.tax_code_short": "cod. fiscale {code}",
    "customer.saved": "Cliente dell'ordine {order} corretto: il prossimo invio lo manda con i suoi ordini.",
    "customer.bound": "Cliente dell'ordine {order} collegato al cliente del gestionale {code}: i suoi ordini vanno sotto quel codice al prossimo invio.",
    "customer.failed": "Il gestionale non ha risposto: {error}",
    "orders.attempt": "tentativo di invio",
    "orders.decision": "operatore",
    "orders.state.new": "Nuovo",
    "orders.state.payment_unconfirmed": "Pagamento non confermato",
    "orders.state.stored": "Memorizzato",
    "orders.state.modified": "Modificato",
    "orders.state.partially_fulfilled": "Parzialmente evaso",
    "orders.state.suspended": "Sospeso",
    "orders.state.modified_cancelled": "Modificato-Annullato",
    "orders.state.to_check": "Da verificare",
    "orders.state.fulfilled": "Evaso",
    "orders.state.delivered": "Bollato",
    "orders.state.invoiced": "Fatturato",
    "orders.state.transformed": "Trasformato",
    "orders.state.cancelled": "Annullato",
    "orders.payment.confirmed": "confermato",
    "orders.payment.unconfirmed": "non confermato",
    "orders.outcome.sending": "in corso",
    "orders.outcome.created": "creato",
    "orders.outcome.found": "già presente nel gestionale",
    "orders.outcome.matched": "già cliente del gestionale",
    "orders.outcome.operator": "abbinato dall'operatore",
    "orders.outcome.resent": "rimesso in coda",
    "orders.outcome.paid": "pagamento confermato",
    "orders.outcome.cancelled": "annullato, da non inviare",
    "orders.outcome.failed": "non riuscito",
    "orders.outcome.uncertain": "esito incerto",
    "orders.outcome.deferred": "rinviato",
    "orders.sent_at": "Inviato",
    "orders.refreshed_at": "Ultima lettura dal gestionale",
    "orders.updates_count": "Aggiornamenti dal gestionale: {count}",
    "orders.reviewed_at": "visto {when}",
    "orders.to_review": "da rivedere: {ack} per segnarlo visto",
    "orders.site_edit": "Modifica del sito superata dal gestionale",
    "orders.not_found": "L'ordine {order} non si può leggere: {error}",
    "orders.not_waiting": "L'ordine {order} non è in attesa di invio (è {state}).",
    "orders.not_to_check": "L'ordine {order} è {state}: si rinvia solo un ordine il cui documento nel gestionale non c'è più (Da verificare).",
    "orders.resend_question": "Ordine {order}: il gestionale non ha più il suo documento. Rimetterlo in coda, da inviare di nuovo? Prima dell'invio il gestionale viene cercato ancora per un documento con il suo marcatore, così non è mai inserito due volte.",
    "orders.resending": "Ricerca dell'ordine {order} nel gestionale...",
    "orders.resent": "L'ordine {order} è di nuovo in attesa di invio: {send} lo invia ora.",
    "orders.resend_hint": "Il gestionale non ha più il suo documento: {key} lo rimette in coda, da inviare di nuovo.",
    "orders.payment_unconfirmed": "L'ordine {order} attende la conferma del pagamento; prima non viene inviato.",
    "orders.payment_hint": "In attesa del pagamento: {key} conferma che è arrivato, e l'ordine attende poi l'invio.",
    "orders.payment_question": "Il pagamento dell'ordine {order} è arrivato? L'ordine attende poi l'invio al gestionale.",
    "orders.payment_confirmed": "Ordine {order}: pagamento confermato; {send} lo invia ora.",
    "orders.payment_not_awaited": "L'ordine {order} è {state}: non attende il pagamento.",
    "orders.not_cancellable": "L'ordine {order} è {state}: qui si annulla solo un ordine che non è nel gestionale; uno che c'è si annulla lì.",
    "orders.cancel_question": "Annullare per sempre l'ordine {order}? Non sarà mai inviato al gestionale. Se un invio potrebbe averlo spedito, prima si cerca nel gestionale un documento con il suo marcatore.",
    "orders.cancelling": "Ricerca dell'ordine {order} nel gestionale...",
    "orders.cancelled_done": "L'ordine {order} è annullato: non sarà inviato.",
    "orders.sending": "Parziale dell'ordine {order} avviato.",
    "orders.ack_all_question": "Segnare come visti i {count} aggiornamenti mostrati?",
    "orders.ack_all_question_one": "Segnare come visto l'aggiornamento mostrato?",
    "orders.acked": "{count} aggiornamenti segnati visti.",
    "orders.acked_one": "1 aggiornamento segnato visto.",
    "orders.ack_unknown": "Aggiornamenti sconosciuti, non segnati: {ids}",
    "orders.ack_failed": "Segnare come visti gli aggiornamenti",
    "palette.sync.total": "Sincronizzazione Totale",
    "palette.sync.changed": "Sincronizzazione Variati",
    "palette.sync.partial": "Sincronizzazione Parziale",
    "palette.sync.cancel": "Annulla sincronizzazione",
    "palette.sync.total.help": "Avvia un Totale: tutti i record da trasferire al sito",
    "palette.sync.changed.help": "Avvia un Variati: quanto variato dall'ultima sincronizzazione completa",
    "palette.sync.partial.help": "Apri il lanciatore per scegliere l'ambito del Parziale",
    "palette.sync.cancel.help": "Annulla la sincronizzazione in corso (chiede conferma)",
    "palette.goto.dashboard": "Vai al cruscotto",
    "palette.goto.orders": "Vai agli ordini",
    "palette.goto.changes": "Vai alle variazioni",
    "palette.goto.categories": "Vai alle categorie",
    "palette.goto.catalogue": "Vai al catalogo",
    "palette.goto.runs": "Vai alle esecuzioni",
    "palette.goto.fields": "Vai ai campi",
    "palette.goto.dashboard.help": "Stato gestionale, ultime esecuzioni, campi variati",
    "palette.goto.orders.help": "Ordini web e aggiornamenti dal gestionale da rivedere",
    "palette.goto.changes.help": "Il registro variazioni per esecuzione, entità, campo, chiave",
    "palette.goto.categories.help": "L'albero delle categorie e i suoi articoli",
    "palette.goto.catalogue.help": "Articoli e clienti; segnane alcuni per un Parziale",
    "palette.goto.runs.help": "Storico e dettaglio delle esecuzioni",
    "palette.goto.fields.help": "I campi del gestionale e quelli usati dal sito",
    "palette.keys": "Tasti",
    "palette.keys.help": "I tasti validi in questa schermata (F1)",
    "palette.minimize": "Riduci",
    "palette.minimize.help": "Riporta il riquadro alla dimensione normale",
    "palette.maximize": "Ingrandisci",
    "palette.maximize.help": "Il riquadro attivo a tutto schermo",
    "palette.theme": "Tema",
    "palette.theme.help": "Cambia i colori",
    "palette.screenshot": "Istantanea dello schermo",
    "palette.screenshot.help": "Salva un'immagine SVG dello schermo in {folder}",
    "palette.quit": "Esci",
    "palette.quit.help": "Chiudi passweb-tui (chiede conferma se una sincronizzazione è in corso)",
    "palette.placeholder": "Cerca un comando…",
    "palette.themes": "Cerca un tema…",
    "screenshot.saved": "Istantanea dello schermo salvata: {path}",
    "screenshot.failed": "Istantanea dello schermo non salvata in {folder}: {why}",
}
# fmt: on

CATALOGUE: dict[str, dict[str, str]] = {"en": EN, "it": IT}


def missing_keys() -> dict[str, list[str]]:
    """Keys each language lacks compared with the other (empty lists when complete)."""
    keys = set(EN) | set(IT)
    return {lang: sorted(keys - set(table)) for lang, table in CATALOGUE.items()}


#: the languages' names a setting may give instead of their codes
_LANGUAGE_NAMES = {"english": "en", "inglese": "en", "italian": "it", "italiano": "it"}


def pick_language(configured: str | None, env: Mapping[str, str] | None = None) -> str:
    """The language from the config file if set, else from the locale variables."""
    if configured:
        wanted = configured.strip().lower()
        # a code (it), a locale (it_IT.UTF-8, it-IT) or the language's name in either
        code = _LANGUAGE_NAMES.get(wanted) or re.split(r"[_.@-]", wanted, maxsplit=1)[0]
        if code not in LANGUAGES:
            raise ValueError(
                f"language {configured!r} is not available; choose one of {', '.join(LANGUAGES)}"
            )
        return code
    env = os.environ if env is None else env
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = env.get(var, "")
        if value:
            code = value.split(":")[0][:2].lower()
            return code if code in LANGUAGES else DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


def set_language(code: str) -> None:
    global _current
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}")
    _current = code


def language() -> str:
    return _current


def group_digits(text: str) -> str:
    """A number already formatted with "," between thousands, in the language's style."""
    return text.replace(",", ".") if _current == "it" else text


def grouped_number(text: str) -> str:
    """A number written plainly ("-1234.5") with its thousands grouped and its decimal
    point in the language's style: 1.234,5 in Italian, 1,234.5 in English. Any other
    text is left as it is."""
    m = re.fullmatch(r"(-?)(\d+)((?:\.\d+)?)", text)
    if m is None:
        return text
    sign, whole, fraction = m.groups()
    return sign + group_digits(f"{int(whole):,}") + decimal_point(fraction)


def decimal_point(text: str) -> str:
    """A number written with a decimal point (no thousands separator), in the language's
    style: 1198,87 in Italian."""
    return text.replace(".", ",") if _current == "it" else text


def date_text(year: int, month: int, day: int) -> str:
    """A day in the language's style: 27/11/2026 in Italian, 2026-11-27 in English."""
    if _current == "it":
        return f"{day:02d}/{month:02d}/{year:04d}"
    return f"{year:04d}-{month:02d}-{day:02d}"


def t(key: str, /, default: str | None = None, **values: object) -> str:
    """The text of `key` in the current language, with `{name}` fields filled in; for
    a `count` of one, the language's singular form (`key` + "_one") where it has one."""
    if str(values.get("count")) == "1" and key + "_one" in CATALOGUE[_current]:
        key += "_one"
    text = CATALOGUE[_current].get(key)
    if text is None:
        text = EN.get(key, key if default is None else default)
    if values:
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):
            return text
    return text


@functools.cache
def _erp_error_name() -> re.Pattern[str]:
    """The names of the ERP's errors, which a run's stored error starts with (see
    sync.failure_text) before a message that says itself what went wrong ("ERP is
    busy: ..."): a screen shows the message alone."""
    from passweb_tui.engine.erp.errors import ErpError

    names, todo = set(), [ErpError]
    while todo:
        kind = todo.pop()
        names.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return re.compile(rf"^(?:{'|'.join(sorted(names))}): ")


#: the engine's messages made of parts (a record's reject reason, as records.py and the
#: order push word them), in Italian: each English form with its parts named, and the
#: Italian with the same parts. A part named `rest` is itself a message, read again (the
#: form fits only when it is known); one named `more` is read again where it is known
#: (else kept as written: the ERP's own words, say).
_PARTS_IT: tuple[tuple[str, str], ...] = (
    (r"field (?P<name>\S+): (?P<rest>.+)", "campo {name}: {rest}"),
    (
        r"expected an array of \[index, value\] pairs, got (?P<v>.+)",
        "attesa una lista di coppie [indice, valore], trovato {v}",
    ),
    (r"index (?P<i>-?\d+) appears twice, in (?P<v>.+)", "l'indice {i} compare due volte, in {v}"),
    (r"expected text, got (?P<v>.+)", "atteso un testo, trovato {v}"),
    (
        r"text of (?P<n>\d+) characters, longer than (?P<m>\d+)",
        "testo di {n} caratteri, più lungo di {m}",
    ),
    (r"expected a number, got (?P<v>.+)", "atteso un numero, trovato {v}"),
    (r"expected a date AAAAMMGG, got (?P<v>.+)", "attesa una data AAAAMMGG, trovato {v}"),
    (
        r"(?P<v>.+) is not a date of the calendar \(AAAAMMGG\)",
        "{v} non è una data del calendario (AAAAMMGG)",
    ),
    (r"expected a time HHMMSS, got (?P<v>.+)", "attesa un'ora HHMMSS, trovato {v}"),
    (
        r"text with a NUL character \(0x00\), which the store cannot keep",
        "testo con un carattere NUL (0x00), che l'archivio non può tenere",
    ),
    (r"(?P<v>\S+) is not a number the store keeps", "{v} non è un numero che l'archivio tiene"),
    (
        r"(?P<v>\S+) is beyond what the store keeps \(less than 10\^(?P<d>\d+)\)",
        "{v} supera quanto l'archivio tiene (meno di 10^{d})",
    ),
    (
        r"(?P<v>\S+) has more significant digits than the store keeps exactly \((?P<d>\d+)\)",
        "{v} ha più cifre significative di quante l'archivio ne tenga esatte ({d})",
    ),
    (
        r"(?P<col>\S+) (?P<v>.+)\.\.\. longer than the site allows \((?P<n>\d+)\)",
        "{col} {v}... più lungo di quanto il sito consenta ({n})",
    ),
    (r"currency without ISO code \(sigla_iso\)", "valuta senza codice ISO (sigla_iso)"),
    (
        r"cod_listino: (?P<v>.+) is not a price list number \(a whole number, 0 for none\)",
        "cod_listino: {v} non è un numero di listino (un numero intero, 0 per nessuno)",
    ),
    (r"prezzo: (?P<v>\S+) is negative", "prezzo: {v} è negativo"),
    (
        r"dt_fine (?P<end>\S+) is before dt_inizio (?P<start>\S+): the condition would never apply",
        "dt_fine {end} è prima di dt_inizio {start}: la condizione non si applicherebbe mai",
    ),
    (
        r"unknown category (?P<c>.+) in (?P<f>\w+) \(the store has no categories yet: a TOTAL"
        r" or a Parziale of categories brings them\)",
        "categoria {c} sconosciuta in {f} (l'archivio non ha ancora categorie: le porta un"
        " Totale o un Parziale delle categorie)",
    ),
    (r"unknown category (?P<c>.+) in (?P<f>\w+)", "categoria {c} sconosciuta in {f}"),
    (r"unknown payment (?P<c>.+) in (?P<f>\w+)", "pagamento {c} sconosciuto in {f}"),
    (r"unknown price list (?P<c>.+) in (?P<f>\w+)", "listino {c} sconosciuto in {f}"),
    (r"unknown currency (?P<c>.+) in (?P<f>\w+)", "valuta {c} sconosciuta in {f}"),
    (r"prz_listino: price list number (?P<rest>.+)", "prz_listino: numero di listino {rest}"),
    (r"prz_listino: price list (?P<n>\d+): (?P<rest>.+)", "prz_listino: listino {n}: {rest}"),
    (r"missing key (?P<k>\S+)", "manca la chiave {k}"),
    (r"key (?P<k>\S+) has the wrong type: (?P<v>.+)", "la chiave {k} ha il tipo sbagliato: {v}"),
    (r"key (?P<k>\S+) longer than (?P<n>\d+) characters", "chiave {k} più lunga di {n} caratteri"),
    (
        r"not in the store: no web order has this id",
        "non è nell'archivio: nessun ordine web ha questo id",
    ),
    (r"not sent: (?P<more>.+)", "non inviato: {more}"),
    (
        r"orders waiting for their payment to be confirmed, not sent: (?P<ids>.+)",
        "ordini in attesa della conferma del pagamento, non inviati: {ids}",
    ),
    (
        r"(?P<n>\d+) web orders? waiting to be sent \(with any new customer of theirs\): a dry"
        r" run sends nothing",
        "ordini web da inviare (con i loro nuovi clienti): {n}; una prova non invia nulla",
    ),
    (
        r"(?P<n>\d+) open order\(s\) not updated: their ERP document could not be read \(see the"
        r" run's rejects\)",
        "ordini aperti non aggiornati: {n}; il loro documento nel gestionale non si è potuto"
        " leggere (vedi gli scarti dell'esecuzione)",
    ),
    (
        r"order (?P<ids>\S+) not sent: held by customer (?P<name>.+) \(site id (?P<id>\d+)\), not"
        r" sent either",
        "ordine {ids} non inviato: fermo per il cliente {name} (id sul sito {id}), non inviato"
        " neanch'esso",
    ),
    (
        r"orders (?P<ids>.+) not sent: held by customer (?P<name>.+) \(site id (?P<id>\d+)\), not"
        r" sent either",
        "ordini {ids} non inviati: fermi per il cliente {name} (id sul sito {id}), non inviato"
        " neanch'esso",
    ),
    (
        r"customer (?P<name>.+) \(site id (?P<id>\d+)\) not sent: (?P<more>.+)",
        "cliente {name} (id sul sito {id}) non inviato: {more}",
    ),
    (
        r"customer \(site id (?P<id>\d+)\) not sent: (?P<more>.+)",
        "cliente (id sul sito {id}) non inviato: {more}",
    ),
    (
        r"(?P<entity>\w+) would have no used field left: the site keeps at least one besides"
        r" the key; use another one first",
        "{entity}: non resterebbe alcun campo usato; il sito ne tiene almeno uno oltre alla"
        " chiave: usarne prima un altro",
    ),
    (
        r"another TOTAL/CHANGED sync is running: (?P<rest>.+)",
        "è in corso un altro Totale/Variati: {rest}",
    ),
    (
        r"run (?P<id>\d+) \((?P<who>.+)\) since (?P<a>[\d:\- ]+), lease until (?P<b>[\d:\- ]+)",
        "esecuzione {id} ({who}) dalle {a}, riservato fino alle {b}",
    ),
    (
        r"a run being set up \((?P<who>.+)\) since (?P<a>[\d:\- ]+), lease until"
        r" (?P<b>[\d:\- ]+)",
        "un'esecuzione in preparazione ({who}) dalle {a}, riservato fino alle {b}",
    ),
    (
        r"run (?P<id>\d+) \(held by (?P<who>.+)\) since (?P<a>\S+), last heartbeat (?P<h>\S+),"
        r" lease expires (?P<b>\S+)",
        "esecuzione {id} (di {who}) dal {a}, ultimo segnale {h}, riservato fino al {b}",
    ),
    (
        r"monthly sync quota used up: (?P<u>\d+) of (?P<q>\d+) TOTAL/CHANGED syncs in"
        r" (?P<m>\S+)",
        "quota mensile esaurita: {u} di {q} sincronizzazioni Totale/Variati nel mese {m}",
    ),
    (
        r"not in the ERP: no (?P<res>\S+) record has codice (?P<c>.+)",
        "non è nel gestionale: nessun record di {res} ha codice {c}",
    ),
    (
        r"nothing was sent, the ERP did not answer: (?P<more>.+)",
        "nulla è stato inviato, il gestionale non ha risposto: {more}",
    ),
    (
        r"(?P<n>\d+) more not sent \(see the run's rejects\)",
        "altri {n} non inviati (vedi gli scarti dell'esecuzione)",
    ),
    (r"order (?P<id>\S+) not sent: (?P<more>.+)", "ordine {id} non inviato: {more}"),
    (r"customer (?P<id>\S+) not sent: (?P<more>.+)", "cliente {id} non inviato: {more}"),
    (
        r"customer (?P<name>.+) \(site id (?P<id>\d+)\) is the ERP's customer (?P<code>\S+)"
        r" already \(same VAT number (?P<v>.+)\): bound to it, not created again",
        "cliente {name} (id sul sito {id}): è già il cliente {code} del gestionale (stessa"
        " partita IVA {v}): collegato a quello, non creato di nuovo",
    ),
    (
        r"customer (?P<name>.+) \(site id (?P<id>\d+)\) is the ERP's customer (?P<code>\S+)"
        r" already \(same tax code (?P<v>.+)\): bound to it, not created again",
        "cliente {name} (id sul sito {id}): è già il cliente {code} del gestionale (stesso"
        " codice fiscale {v}): collegato a quello, non creato di nuovo",
    ),
    (
        r"(?P<names>.+) wait until (?P<t>\S+) UTC before being sent again: an earlier"
        r" attempt's request may still be in the ERP's hands \(its sender stopped, or its"
        r" answer was lost\), and a look-up then finds what it made",
        "{names}: attendono fino alle {t} UTC prima di un nuovo invio: la richiesta di un"
        " tentativo precedente può essere ancora in mano al gestionale (chi la inviava si è"
        " fermato, o la risposta è andata persa), e una ricerca troverà quanto ha creato",
    ),
    (
        r"partial sync: (?P<n>\d+) web orders? waiting, none could be sent now",
        "Parziale: ordini web in attesa: {n}, nessuno si è potuto inviare ora",
    ),
    (
        r"partial sync: pushes waiting web customers and orders; nothing was waiting; nothing"
        r" to do",
        "Parziale: invia i clienti e gli ordini web in attesa; nessuno era in attesa; nulla da"
        " fare",
    ),
    (
        r"(?P<n>\d+) web orders? waiting, not sent: a partial sync of whole entities only"
        r" re-reads; a partial sync with no entity, or naming the orders, sends them",
        "ordini web in attesa, non inviati: {n}; un Parziale di entità intere rilegge soltanto;"
        " un Parziale senza entità, o che nomina gli ordini, li invia",
    ),
    (
        r"(?P<n>\d+) categories: the site works best under (?P<m>\d+) \(the secondary mode"
        r" keeps only the web-flagged groups\)",
        "{n} categorie: il sito lavora meglio sotto le {m} (il modo secondario tiene solo i"
        " gruppi segnati per il web)",
    ),
    (
        r"(?P<entity>\w+) not flagged for the site in the ERP, left as stored \(a partial sync"
        r" removes nothing\): (?P<keys>.+)",
        "{entity}: non segnati per il sito nel gestionale, lasciati come in archivio (un"
        " Parziale non toglie nulla): {keys}",
    ),
    (
        r"site settings changed \((?P<a>.+) -> (?P<b>.+)\): (?P<what>.+) pulled in full",
        "impostazioni del sito cambiate ({a} -> {b}): letti per intero {what}",
    ),
    (r"resources of (?P<a>\S+): (?P<more>.+)", "risorse di {a}: {more}"),
    # a web order's or customer's push error (its subject first, where a view shows it)
    (r"order (?P<id>\S+): (?P<rest>.+)", "ordine {id}: {rest}"),
    (
        r"customer (?P<name>.+) \(site id (?P<id>\d+)\): (?P<rest>.+)",
        "cliente {name} (id sul sito {id}): {rest}",
    ),
    (
        r"its customer (?P<name>.+?) is not in the ERP yet: (?P<more>.+)",
        "il suo cliente {name} non è ancora nel gestionale: {more}",
    ),
    (
        r"its customer (?P<name>.+) is not in the ERP yet",
        "il suo cliente {name} non è ancora nel gestionale",
    ),
    (r"its customer (?P<name>.+) is being created", "il suo cliente {name} è in creazione"),
    (
        r"category (?P<c>'.*') \((?P<f>\w+)\) is no longer among the site's categories; the"
        r" article keeps the link until the ERP changes it",
        "la categoria {c} ({f}) non è più tra le categorie del sito; l'articolo mantiene il"
        " collegamento finché il gestionale non lo cambia",
    ),
    (
        r"payment (?P<c>'.*') \((?P<f>\w+)\) is no longer among the ERP's; the customer keeps"
        r" the link until the ERP changes it",
        "il pagamento {c} ({f}) non è più tra quelli del gestionale; il cliente mantiene il"
        " collegamento finché il gestionale non lo cambia",
    ),
    (
        r"price list (?P<c>'.*') \((?P<f>\w+)\) is no longer among the ERP's; the customer"
        r" keeps the link until the ERP changes it",
        "il listino {c} ({f}) non è più tra quelli del gestionale; il cliente mantiene il"
        " collegamento finché il gestionale non lo cambia",
    ),
    (
        r"currency (?P<c>'.*') \((?P<f>\w+)\) is no longer among the ERP's; the customer keeps"
        r" the link until the ERP changes it",
        "la valuta {c} ({f}) non è più tra quelle del gestionale; il cliente mantiene il"
        " collegamento finché il gestionale non lo cambia",
    ),
    (
        r"no customer code left under ledger (?P<l>\S+) in the ERP \((?P<d>.*)\); free some"
        r" codes or configure another ledger",
        "nessun codice cliente libero nel mastro {l} del gestionale ({d}); liberare dei codici"
        " o configurare un altro mastro",
    ),
    (
        r"customer \(site id (?P<id>\d+)\): the ERP customer (?P<c>\S+) is already the site"
        r" customer (?P<h>\S+); the two need an operator to tell them apart or merge them",
        "cliente (id sul sito {id}): il cliente del gestionale {c} è già il cliente del sito"
        " {h}; un operatore deve distinguerli o unirli",
    ),
    (
        r"an earlier attempt's outcome is unknown and looking it up in the ERP failed:"
        r" (?P<more>.+)",
        "l'esito di un tentativo precedente non è noto e la ricerca nel gestionale non è"
        " riuscita: {more}",
    ),
    (
        r"the ERP holds (?P<n>\d+) documents for this order: (?P<k>.+)",
        "il gestionale ha {n} documenti per questo ordine: {k}",
    ),
    (
        r"the ERP made it document (?P<k>\S+), which the site order (?P<h>\S+) holds too \(an"
        r" ERP restored from a backup gives its numbers out again\): an operator decides which"
        r" is which; not sent again",
        "il gestionale gli ha dato il documento {k}, che ha anche l'ordine del sito {h} (un"
        " gestionale ripristinato da un backup riassegna i suoi numeri): un operatore decide"
        " quale sia quale; non viene inviato di nuovo",
    ),
    (
        r"currency (?P<c>\S+) is not among the ERP's currencies",
        "la valuta {c} non è tra le valute del gestionale",
    ),
    (r"the ERP did not take it: (?P<more>.+)", "il gestionale non l'ha accettato: {more}"),
    (r"the ERP did not create it: (?P<more>.+)", "il gestionale non l'ha creato: {more}"),
    (
        r"order (?P<o>\S+): the ERP holds (?P<keys>.+) for it: cancel it there, and the next"
        r" refresh follows it",
        "ordine {o}: il gestionale ha {keys} per questo ordine: annullalo lì, e il prossimo"
        " aggiornamento lo segue",
    ),
    (
        r"order (?P<o>\S+) is being sent or changed right now; nothing done: try again once"
        r" that push is over",
        "ordine {o}: è in corso di invio o di modifica; nulla è stato fatto: riprova a invio"
        " finito",
    ),
    (
        r"the ERP may have created it, its answer was lost: (?P<more>.+); it is looked up"
        r" there before it is sent again",
        "il gestionale potrebbe averlo creato, la sua risposta è andata persa: {more};"
        " viene cercato lì prima di inviarlo di nuovo",
    ),
    (
        r"looking it up in the ERP failed: (?P<more>.+)",
        "la ricerca nel gestionale non è riuscita: {more}",
    ),
    (
        r"looking for it among the ERP's customers failed: (?P<more>.+)",
        "la ricerca tra i clienti del gestionale non è riuscita: {more}",
    ),
    (r"the ERP failed: (?P<more>.+)", "errore del gestionale: {more}"),
    # a request tried again (sync.retry_message), in the sync's log
    (
        r"(?P<more>.+): trying again in (?P<secs>[\d.]+) s \((?P<a>\d+) of (?P<n>\d+)\)",
        "{more}: nuovo tentativo tra {secs} s ({a} di {n})",
    ),
    (r"the ERP is busy", "il gestionale è occupato"),
    (r"the ERP did not answer in time", "il gestionale non ha risposto in tempo"),
    (r"the connection to the ERP failed", "la connessione al gestionale non è riuscita"),
    (
        r"the ERP failed to serve a request",
        "il gestionale non è riuscito a servire una richiesta",
    ),
    (r"a request to the ERP failed", "una richiesta al gestionale non è riuscita"),
    # the ERP's failures, as the client words them (the ERP's own detail after them kept)
    (
        r"ERP rejected the credentials \(HTTP (?P<s>\d+)\)(?P<said>.*)",
        "il gestionale ha rifiutato le credenziali (HTTP {s}){said}",
    ),
    (
        r"the ERP at (?P<url>\S+) did not answer in (?P<wait>[^(]+?) \((?P<why>[^)]*)\);"
        r" whether the change was applied is unknown(?P<said>.*)",
        "il gestionale a {url} non ha risposto in {wait} ({why}); non si sa se la modifica"
        " sia stata applicata{said}",
    ),
    (
        r"the ERP at (?P<url>\S+) did not answer in (?P<wait>[^(]+?) \((?P<why>[^)]*)\)"
        r"(?P<said>.*)",
        "il gestionale a {url} non ha risposto in {wait} ({why}){said}",
    ),
    (
        r"ERP did not answer in time \((?P<why>[^)]*)\); whether the change was applied is"
        r" unknown(?P<said>.*)",
        "il gestionale non ha risposto in tempo ({why}); non si sa se la modifica sia stata"
        " applicata{said}",
    ),
    (
        r"ERP did not answer in time \((?P<why>[^)]*)\)(?P<said>.*)",
        "il gestionale non ha risposto in tempo ({why}){said}",
    ),
    (
        r"ERP refused the company context \(Coordinate-Gestionale (?P<c>[^)]*)\)(?P<said>.*)",
        "il gestionale ha rifiutato il contesto aziendale (Coordinate-Gestionale {c}){said}",
    ),
    (
        r"ERP rejected the paging token \(HTTP 400\)(?P<said>.*)",
        "il gestionale ha rifiutato il token di paginazione (HTTP 400){said}",
    ),
    (
        r"ERP has no such record or resource \(HTTP 404\)(?P<said>.*)",
        "il gestionale non ha questo record o risorsa (HTTP 404){said}",
    ),
    (
        r"ERP timed out working on the request \(HTTP 408\)(?P<said>.*)",
        "il gestionale è andato in timeout sulla richiesta (HTTP 408){said}",
    ),
    (
        r"ERP is busy: too many requests in flight \(HTTP (?P<s>\d+)\)(?P<said>.*)",
        "il gestionale è occupato: troppe richieste in corso (HTTP {s}){said}",
    ),
    (
        r"ERP failed to serve the request \(HTTP (?P<s>\d+)\)(?P<said>.*)",
        "il gestionale non è riuscito a servire la richiesta (HTTP {s}){said}",
    ),
    (
        r"ERP refused the request \(HTTP (?P<s>\d+)\)(?P<said>.*)",
        "il gestionale ha rifiutato la richiesta (HTTP {s}){said}",
    ),
    (
        r"ERP refused the request(?P<said>(?:: .*)?)",
        "il gestionale ha rifiutato la richiesta{said}",
    ),
    (
        r"ERP sent a reply that is not valid JSON \((?P<parser>.*)\); it starts (?P<start>.*)",
        "il gestionale ha mandato una risposta che non è JSON valido ({parser}); comincia con"
        " {start}",
    ),
    (
        r"ERP sent a JSON (?P<kind>\w+) where an object was expected(?P<said>.*)",
        "il gestionale ha mandato {kind} dove era atteso un oggetto JSON{said}",
    ),
    (
        r"ERP list reply has 'dati' as a (?P<kind>\w+), not a list(?P<said>.*)",
        "nella risposta a elenco del gestionale 'dati' è {kind}, non una lista{said}",
    ),
    (
        r"ERP list reply has a record that is a (?P<kind>\w+), not an object(?P<said>.*)",
        "la risposta a elenco del gestionale ha un record che è {kind}, non un oggetto{said}",
    ),
    (
        r"ERP list reply (?P<what>.+)",
        "risposta a elenco del gestionale non valida: {what}",
    ),
    (
        r"ERP field description is not usable: (?P<item>.+)",
        "una descrizione di campo del gestionale non è utilizzabile: {item}",
    ),
    (
        r"ERP reply could not be decoded \((?P<why>.*)\); whether the change was applied is"
        r" unknown(?P<said>.*)",
        "la risposta del gestionale non si è potuta decodificare ({why}); non si sa se la"
        " modifica sia stata applicata{said}",
    ),
    (
        r"ERP reply could not be decoded \((?P<why>.*)\)(?P<said>.*)",
        "la risposta del gestionale non si è potuta decodificare ({why}){said}",
    ),
    (
        r"ERP answered (?P<s>\d+) to a create without a usable Location header \((?P<l>.*)\);"
        r" whether the record was created is unknown(?P<said>.*)",
        "il gestionale ha risposto {s} a una creazione senza un'intestazione Location"
        " utilizzabile ({l}); non si sa se il record sia stato creato{said}",
    ),
    (
        r"no Mexal WebAPI answers at (?P<url>\S+) \(HTTP 404 on its installation data\)"
        r"(?P<said>.*)",
        "a {url} non risponde nessuna WebAPI Mexal (HTTP 404 sui dati di installazione){said}",
    ),
    (
        r"the ERP at (?P<url>\S+) does not speak TLS on that port \((?P<why>.*)\); if it"
        r" serves plain HTTP there, the URL should start with http://(?P<said>.*)",
        "il gestionale a {url} non parla TLS su quella porta ({why}); se lì serve HTTP"
        " semplice, l'URL deve cominciare con http://{said}",
    ),
    (
        r"the ERP's TLS certificate at (?P<url>\S+) was not accepted \((?P<why>.*)\); give its"
        r" CA with --ca-file \(or ca_file in the config file\)(?P<said>.*)",
        "il certificato TLS del gestionale a {url} non è stato accettato ({why}); indicarne la"
        " CA con --ca-file (o ca_file nel file di configurazione){said}",
    ),
    (
        r"CA file (?P<f>.+) cannot be used: (?P<why>.+)",
        "il file CA {f} non si può usare: {why}",
    ),
    (
        r"cannot reach the ERP at (?P<url>\S+): (?P<why>.+)",
        "il gestionale a {url} non è raggiungibile: {why}",
    ),
    (
        r"connection to the ERP at (?P<url>\S+) was lost: (?P<why>.+); whether the change"
        r" was applied is unknown(?P<said>.*)",
        "la connessione al gestionale a {url} si è interrotta: {why}; non si sa se la"
        " modifica sia stata applicata{said}",
    ),
    (
        r"connection to the ERP at (?P<url>\S+) was lost: (?P<why>.+)",
        "la connessione al gestionale a {url} si è interrotta: {why}",
    ),
    (
        r"connection to the ERP was lost: (?P<why>.+); whether the change was applied is"
        r" unknown(?P<said>.*)",
        "la connessione al gestionale si è interrotta: {why}; non si sa se la modifica sia"
        " stata applicata{said}",
    ),
    (
        r"connection to the ERP was lost: (?P<why>.+)",
        "la connessione al gestionale si è interrotta: {why}",
    ),
    # a database's error that stopped a run (sync.failure_text): its kind kept
    (
        r"database error \((?P<kind_db>\w+)\): (?P<db>.+)",
        "errore del database ({kind_db}): {db}",
    ),
    # a value named before what is wrong with it ("prezzo: ..."): the rest, read again
    (r"(?P<head>[\w.]+): (?P<rest>.+)", "{head}: {rest}"),
)


#: what the client adds after the ERP's own detail of a failure (a part named `said`),
#: in Italian: substitutions made wherever they fit, the ERP's words left as written
_TAILS_IT: tuple[tuple[str, str], ...] = (
    (
        r"; the ERP stayed unavailable for (.+?), asking to retry in (\S+) s",
        r"; il gestionale è rimasto non disponibile per \1, chiedendo di riprovare tra \2 s",
    ),
    (
        r"; the ERP stayed unavailable for (\d[\d.]* s|\d+ min \d+ s|\d+ h \d+ min)",
        r"; il gestionale è rimasto non disponibile per \1",
    ),
    (
        r" \(retries stop after (.+?) of busy answers\)",
        r" (i tentativi si fermano dopo \1 di risposte di occupato)",
    ),
)


#: what Python's JSON parser says of a text it cannot read (a part named `parser`), in
#: Italian
_PARSER_IT: tuple[tuple[str, str], ...] = (
    (r"^Expecting value", "atteso un valore"),
    (r"^Extra data", "dati in più dopo il documento"),
    (r"^Expecting '(.)' delimiter", r"atteso il separatore '\1'"),
    (r"^Expecting property name enclosed in double quotes", "atteso un nome tra virgolette"),
    (r"^Unterminated string starting at", "testo non chiuso che comincia a"),
    (r"^Invalid control character at", "carattere di controllo non valido a"),
    (r"^Invalid \\uXXXX escape", r"sequenza \\uXXXX non valida"),
    (r"^Invalid \\escape", "sequenza di escape non valida"),
    (r"line (\d+) column (\d+) \(char (\d+)\)", r"riga \1 colonna \2 (carattere \3)"),
    (r"^non-finite number (\S+) in JSON", r"numero non finito \1 nel JSON"),
    (
        r"'([\w-]+)' codec can't decode bytes? (.+?) in position ([^:]+): [^)]*",
        r"il codec '\1' non sa leggere i byte \2 in posizione \3",
    ),
    (
        r"^the reply declares an unknown charset (.+)",
        r"la risposta dichiara una codifica sconosciuta \1",
    ),
    (
        r"^the reply is not valid (\S+) as it declares \((.*)\)",
        r"la risposta non è \1 valido come dichiara (\2)",
    ),
)


#: what a database says of an error that stopped a run (a part named `db`), in Italian:
#: SQLite's messages and PostgreSQL's commonest, where they fit; any other left as it is
_DB_IT: tuple[tuple[str, str], ...] = (
    (r"^database or disk is full$", "database o disco pieno"),
    (r"^database is locked$", "database bloccato da un altro processo che lo scrive"),
    (r"^disk I/O error$", "errore di lettura o scrittura sul disco"),
    (r"^attempt to write a readonly database$", "il database è in sola lettura"),
    (r"^database disk image is malformed$", "il file del database è danneggiato"),
    (r"^unable to open database file$", "il file del database non si può aprire"),
    (r"^file is not a database$", "il file non è un database"),
    (r"^UNIQUE constraint failed: ", "vincolo di unicità violato: "),
    (r"^no such table: ", "tabella inesistente: "),
    (r"^no such column: ", "colonna inesistente: "),
    (r"^deadlock detected", "stallo tra transazioni (deadlock)"),
    (r"^canceling statement due to statement timeout", "istruzione annullata per timeout"),
    (
        r"^terminating connection due to administrator command",
        "connessione chiusa dall'amministratore del server",
    ),
    (
        r"server closed the connection unexpectedly",
        "il server ha chiuso la connessione inaspettatamente",
    ),
    (r"Connection refused", "connessione rifiutata"),
    (r"No space left on device", "spazio esaurito sul dispositivo"),
    (r"^could not extend file ", "il file non si può estendere "),
    (r"^connection to server at ", "connessione al server "),
    (r"\bfailed: ", "non riuscita: "),
)


#: a list of records in a message (parts named `names`, `keys` or `ids`): the words
#: around the keys, in Italian ("order W1, customer 3 and 2 more")
_LIST_WORDS_IT: tuple[tuple[str, str], ...] = (
    (r"\border (?=\S)", "ordine "),
    (r"\bcustomer (?=\S)", "cliente "),
    (r" and (\d+) more$", r" e altri \1"),
)
#: the substitutions of a language, by what they apply to
_SUBSTITUTIONS = {
    "said": {"it": _TAILS_IT},
    "list": {"it": _LIST_WORDS_IT},
    "parser": {"it": _PARSER_IT},
    "db": {"it": _DB_IT},
}

#: a JSON value's kind by its Python type's name, said with its article
_KINDS: dict[str, dict[str, str]] = {
    "it": {
        "list": "una lista",
        "dict": "un oggetto",
        "str": "un testo",
        "int": "un numero",
        "float": "un numero",
        "bool": "un valore vero/falso",
        "NoneType": "null",
    }
}


@functools.cache
def _substitutions(what: str, code: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    table = _SUBSTITUTIONS[what].get(code, ())
    return tuple((re.compile(pattern), said) for pattern, said in table)


def _substituted(text: str, what: str) -> str:
    for pattern, said in _substitutions(what, _current):
        text = pattern.sub(said, text)
    return text


@functools.cache
def _parts(code: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    table = {"it": _PARTS_IT}.get(code, ())
    return tuple((re.compile(pattern, re.DOTALL), said) for pattern, said in table)


def _in_parts(text: str, depth: int = 0) -> str | None:
    """A message made of parts in the current language, or None when none fits."""
    for pattern, said in _parts(_current):
        m = pattern.fullmatch(text)
        if m is None:
            continue
        parts = m.groupdict()
        if "rest" in parts:
            rest = _in_parts(parts["rest"], depth + 1) if depth < 4 else None
            if rest is None:
                continue  # the rest is no message known here: the next pattern, or none
            parts["rest"] = rest
        if "more" in parts:
            parts["more"] = engine_text(parts["more"]) if depth < 4 else parts["more"]
        if "entity" in parts:  # an entity's name, as the screens call it
            parts["entity"] = t(f"entity.{parts['entity']}", default=parts["entity"])
        if "kind" in parts:  # a JSON value's kind, as Python names it
            parts["kind"] = _KINDS.get(_current, {}).get(parts["kind"], parts["kind"])
        for name in ("names", "keys", "ids"):
            if parts.get(name):
                parts[name] = _substituted(parts[name], "list")
        if "secs" in parts:  # a number of seconds with a fraction
            parts["secs"] = decimal_point(parts["secs"])
        if parts.get("said"):  # the ERP's own words, and what the client added to them
            parts["said"] = _substituted(parts["said"], "said")
        for name in ("parser", "db"):  # a JSON parser's or a database's own words
            if parts.get(name):
                parts[name] = _substituted(parts[name], name)
        return said.format(**parts)
    return None


def engine_text(text: str) -> str:
    """A message of the engine (stored with a run, in English) in the current language:
    a fixed one where the catalogue has it, one made of parts (a reject's reason) where
    its form is known; any other text as it is, without the name of the ERP error it was
    raised as."""
    fixed = t("engine." + text, default="")
    if fixed:
        return fixed
    text = _erp_error_name().sub("", text, count=1)
    return _in_parts(text) or text


def engine_notes(message: str) -> str:
    """A run's notes (joined with "; " by the engine) in the current language, each note
    read on its own. A note may hold "; " itself (the ERP's busy answer, then how long it
    stayed so): a part that reads in this language only together with the one before
    it is kept with it."""
    notes: list[str] = []
    for part in message.split("; "):
        if notes and _current != "en" and engine_text(part) == part:
            joined = f"{notes[-1]}; {part}"
            if engine_text(joined) != joined:
                notes[-1] = joined
                continue
        notes.append(part)
    return "; ".join(engine_text(note) for note in notes)
