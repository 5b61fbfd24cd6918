"""`passweb-tui fields list|use|unuse`: which ERP fields the site uses (synced) per entity."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from passweb_tui.commands import CliError, Context, ExitCode
from passweb_tui.commands.sync import open_engine

if TYPE_CHECKING:  # the engine is imported when the command runs, not to build --help
    from passweb_tui.engine.facade import Engine

#: the entities that have fields to choose (records.MAIN_ENTITIES, named here for --help)
ENTITY_NAMES = ("articles", "customers", "conditions")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fields",
        help="list the ERP's fields per entity and choose which ones the site uses",
        description="A field newly used (or no longer used) is filled (or emptied) for every "
        "record of its entity at the next sync.",
    )
    p.add_argument("action", choices=["list", "use", "unuse"])
    p.add_argument("entity", nargs="?", metavar="ENTITY", help=", ".join(ENTITY_NAMES))
    p.add_argument("field", nargs="*", default=[], metavar="FIELD", help="ERP field names")
    p.set_defaults(handler=run)


def _ensure_catalogue(engine: Engine, entity: str | None) -> None:
    from passweb_tui.engine.erp.errors import AuthError, ContextMissingError, ErpError
    from passweb_tui.engine.records import MAIN_ENTITIES

    entities = [entity] if entity else list(MAIN_ENTITIES)
    if any(not engine.fields(e) for e in entities):
        # the store has no field catalogue yet: the ERP's is read first
        try:
            engine.attribute_update()
        except (AuthError, ContextMissingError) as exc:
            raise CliError(f"reading the ERP's field catalogue: {exc}", ExitCode.USAGE) from None
        except ErpError as exc:
            raise CliError(f"reading the ERP's field catalogue: {exc}", ExitCode.FAILED) from None


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.engine.facade import FieldsError
    from passweb_tui.engine.records import MAIN_ENTITIES

    if args.entity is not None and args.entity not in MAIN_ENTITIES:
        raise CliError(
            f"unknown entity {args.entity!r}; choose one of: {', '.join(MAIN_ENTITIES)}",
            ExitCode.USAGE,
        )
    if args.action != "list" and (args.entity is None or not args.field):
        raise CliError(
            f"fields {args.action} needs an ENTITY and at least one FIELD", ExitCode.USAGE
        )
    if args.action == "list" and args.field:
        raise CliError("fields list takes an ENTITY only, no field names", ExitCode.USAGE)
    engine = open_engine(ctx)
    try:
        _ensure_catalogue(engine, args.entity)
        if args.action == "list":
            for entity in [args.entity] if args.entity else MAIN_ENTITIES:
                rows = engine.fields(entity)
                print(f"{entity}: {sum(r.used for r in rows)} of {len(rows)} fields used")
                for r in rows:
                    mark = "key " if r.key else ("used" if r.used else "    ")
                    size = f"{r.type or '?'}{r.length or ''}" + (
                        f"[{r.array_size}]" if r.array_size else ""
                    )
                    print(f"  {mark} {r.name:<24} {size:<10} {r.description or ''}")
            return int(ExitCode.OK)
        used = args.action == "use"
        try:
            changed = engine.set_used(args.entity, args.field, used)
        except FieldsError as exc:
            raise CliError(str(exc), ExitCode.USAGE) from None
        if changed:
            verb = "now used" if used else "no longer used"
            print(
                f"{args.entity}: {', '.join(changed)} {verb}; the next sync refills {args.entity}"
            )
        else:
            print(f"{args.entity}: nothing to change")
        return int(ExitCode.OK)
    finally:
        engine.close()
