"""Prices rounded to four decimals by PostgreSQL stores before w004 are read again

Revision ID: w008_prices_read_again
Revises: w007_change_log_by_entity
Create Date: 2026-12-07 22:10:00

Before w004, a PostgreSQL store's price columns rounded a price quoted to more than
four decimals (12.345678 kept as 12.3457). w004 widened the columns, but the rounded
values stayed: each record's digest is of the ERP's values, which the store's `data`
keeps exactly, so no later sync saw a difference, and the site kept the rounded
price while every check said the store was in step.

Here each such price is set again from the record's own `data` (`prz_listino` by
price list for articles, `prezzo` for particolarita), where it differs: the value the
sync would have written. The ERP's values did not change, so no change-log entry is
made. SQLite stores never rounded (they keep no precision in their columns): nothing
to do there, nor on a store made at w004 or later, whose prices already agree.
"""

from __future__ import annotations

from alembic import op

revision = "w008_prices_read_again"
down_revision = "w007_change_log_by_entity"
branch_labels = None
depends_on = None

#: a text that is a price the store can hold, in plain digits (under 10^12, as the sync
#: takes them); anything else is left as it is (an exponent form, 1e-20000, would stop
#: the migration where PostgreSQL cannot read it)
_NUMBER = r"^\s*[-+]?(\d{1,12}(\.\d{0,255})?|\.\d{1,255})\s*$"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        UPDATE article_prices AS p
           SET price = CAST(a.data::json -> 'prz_listino' ->> CAST(p.price_list AS text)
                            AS numeric)
          FROM articles AS a
         WHERE a.code = p.article_code
           AND (a.data::json -> 'prz_listino' ->> CAST(p.price_list AS text)) ~ '{_NUMBER}'
           AND p.price IS DISTINCT FROM CAST(
                   CAST(a.data::json -> 'prz_listino' ->> CAST(p.price_list AS text)
                        AS numeric) AS numeric(18, 6))
        """
    )
    op.execute(
        f"""
        UPDATE conditions AS c
           SET price = CAST(c.data::json ->> 'prezzo' AS numeric)
         WHERE (c.data::json ->> 'prezzo') ~ '{_NUMBER}'
           AND c.price IS DISTINCT FROM CAST(
                   CAST(c.data::json ->> 'prezzo' AS numeric) AS numeric(18, 6))
        """
    )


def downgrade() -> None:
    """Nothing to undo: the prices are the ERP's, as the sync writes them."""
