"""Field definitions of every simulated resource: names, types, keys, required fields.

They drive `?info=true`, the validation of `fields`, filters and written records,
and the defaults of records created without some fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Field types as `?info=true` reports them: C text, N number, D date "AAAAMMGG",
# T time "HHMMSS", A list of keys (array fields of other types carry dim_array > 0).
TEXT, NUM, DATE, TIME, LIST = "C", "N", "D", "T", "A"


@dataclass(frozen=True)
class Field:
    name: str
    tipo: str
    lunghezza: int
    descrizione: str
    dim_array: int = 0
    required: bool = False
    nullable: bool = False
    row: bool = False  # a document row field (parallel array, one item per row)

    def default(self) -> Any:
        if self.dim_array or self.tipo == LIST:
            return []
        if self.nullable or self.tipo == DATE:
            return None
        return 0 if self.tipo == NUM else ""


@dataclass(frozen=True)
class Schema:
    """A resource's fields; `key` names the field(s) the key is made of."""

    resource: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    date_field: str | None = None  # the modification date a changed-since search uses
    time_field: str | None = None
    int_key: bool = False
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def key_field(self) -> str:
        return self.key[0] if len(self.key) == 1 else "codice"

    def row_fields(self) -> list[Field]:
        return [f for f in self.fields if f.row]

    def info(self) -> list[dict[str, Any]]:
        return [
            {
                "nome": f.name,
                "tipo": f.tipo,
                "lunghezza": f.lunghezza,
                "chiave": f.name in self.key,
                "dim_array": f.dim_array,
                "descrizione": f.descrizione,
            }
            for f in self.fields
        ]


def _f(name: str, tipo: str, size: int, descr: str, **kw: Any) -> Field:
    return Field(name, tipo, size, descr, **kw)


SITES = 9  # per-site flags exist for sites 1..9

ARTICOLI = Schema(
    "articoli",
    ("codice",),
    (
        _f("codice", TEXT, 20, "Codice articolo", required=True),
        _f("descrizione", TEXT, 80, "Descrizione", required=True),
        _f("descr_agg", TEXT, 240, "Descrizione aggiuntiva"),
        _f("prz_listino", NUM, 16, "Prezzo per listino", dim_array=9),
        _f("cod_grp_merc", TEXT, 8, "Gruppo merceologico"),
        _f("cat_web", TEXT, 8, "Categoria web"),
        _f("alq_iva", TEXT, 4, "Aliquota iva", required=True),
        _f("um_principale", TEXT, 2, "Unita di misura principale"),
        _f("qta_inventario", NUM, 16, "Quantita inventario"),
        _f("qta_carico", NUM, 16, "Quantita caricata"),
        _f("qta_scarico", NUM, 16, "Quantita scaricata"),
        _f("ord_cli_e", NUM, 16, "Ordinato clienti evadibile"),
        _f("gest_precanc", TEXT, 1, "Articolo precancellato (S/N)"),
        _f("gest_annullato", TEXT, 1, "Articolo annullato (S/N)"),
        _f("trasf_sito", TEXT, 1, "Trasferisci sul sito (S/N) per sito", dim_array=SITES),
        _f("pubblica", TEXT, 1, "Pubblica sul sito (S/N) per sito", dim_array=SITES),
        _f("offerta", TEXT, 1, "In offerta (S/N) per sito", dim_array=SITES),
        _f("novita", TEXT, 1, "Novita (S/N) per sito", dim_array=SITES),
        _f("peso", NUM, 12, "Peso netto"),
        _f("cod_barre", TEXT, 20, "Codice a barre"),
        _f("dt_mod_sistema", DATE, 8, "Data ultima modifica"),
        _f("ora_mod_sistema", TIME, 6, "Ora ultima modifica"),
    ),
    date_field="dt_mod_sistema",
    time_field="ora_mod_sistema",
)

CLIENTI = Schema(
    "clienti",
    ("codice",),
    (
        _f("codice", TEXT, 12, "Codice conto cliente", required=True),
        _f("ragione_sociale", TEXT, 80, "Ragione sociale", required=True),
        _f("partita_iva", TEXT, 16, "Partita iva"),
        _f("codice_fiscale", TEXT, 16, "Codice fiscale"),
        _f("indirizzo", TEXT, 80, "Indirizzo"),
        _f("cap", TEXT, 10, "Cap"),
        _f("localita", TEXT, 60, "Localita"),
        _f("provincia", TEXT, 2, "Provincia"),
        _f("nazione", TEXT, 2, "Nazione (ISO)"),
        _f("email", TEXT, 80, "Email"),
        _f("telefono", TEXT, 20, "Telefono"),
        _f("cod_pagamento", TEXT, 6, "Codice pagamento"),
        _f("cod_listino", NUM, 2, "Listino"),
        _f("valuta", NUM, 4, "Valuta"),
        _f("sconto", TEXT, 20, "Sconto incondizionato"),
        _f("cat_sconto", TEXT, 4, "Categoria sconto"),
        _f("trasf_sito", TEXT, 1, "Trasferisci sul sito (S/N) per sito", dim_array=SITES),
        _f("data_ult_mod", DATE, 8, "Data ultima modifica"),
    ),
    date_field="data_ult_mod",
)

PARTICOLARITA = Schema(
    "particolarita",
    ("codice",),
    (
        _f("codice", TEXT, 60, "Chiave particolarita (conto+tipo+codice)"),
        _f("cod_conto", TEXT, 12, "Conto cliente", required=True),
        _f("tipo", TEXT, 1, "Tipo: A articolo, G gruppo merceologico", required=True),
        _f("cod_articolo", TEXT, 20, "Articolo", nullable=True),
        _f("cod_grp_merc", TEXT, 8, "Gruppo merceologico", nullable=True),
        _f("prezzo", NUM, 16, "Prezzo particolare", nullable=True),
        _f("sconto", TEXT, 20, "Sconto"),
        _f("dt_inizio", DATE, 8, "Valida dal", nullable=True),
        _f("dt_fine", DATE, 8, "Valida al", nullable=True),
        _f("dt_mod_sistema", DATE, 8, "Data ultima modifica"),
        _f("ora_mod_sistema", TIME, 6, "Ora ultima modifica"),
    ),
    date_field="dt_mod_sistema",
    time_field="ora_mod_sistema",
)

ORDINI_CLIENTI = Schema(
    "documenti/ordini-clienti",
    ("sigla", "serie", "numero"),
    (
        _f("sigla", TEXT, 2, "Sigla documento", required=True),
        _f("serie", NUM, 2, "Serie", required=True),
        _f("numero", NUM, 8, "Numero (0 = assegna il prossimo)", required=True),
        _f("cod_conto", TEXT, 12, "Conto cliente", required=True),
        _f("data_documento", DATE, 8, "Data documento"),
        _f("id_pagamento", TEXT, 6, "Pagamento"),
        _f("id_valuta", NUM, 4, "Valuta"),
        _f("nota", TEXT, 240, "Nota di testata"),
        _f("attivo", TEXT, 1, "Documento attivo (S/N)"),
        _f("num_sito_web", NUM, 2, "Sito web di provenienza"),
        _f("variato", TEXT, 1, "Variato (S/N)"),
        _f("doc_collegati", LIST, 20, "Documenti collegati"),
        _f("data_ult_mod", DATE, 8, "Data ultima modifica"),
        _f("id_riga", NUM, 6, "Riga: numero", dim_array=999, required=True, row=True),
        _f("tp_riga", TEXT, 1, "Riga: tipo", dim_array=999, required=True, row=True),
        _f("codice_articolo", TEXT, 20, "Riga: articolo", dim_array=999, required=True, row=True),
        _f("descr_riga", TEXT, 80, "Riga: descrizione", dim_array=999, row=True),
        _f("quantita", NUM, 16, "Riga: quantita", dim_array=999, required=True, row=True),
        _f("prezzo", NUM, 16, "Riga: prezzo", dim_array=999, row=True),
        _f("sconto", TEXT, 20, "Riga: sconto", dim_array=999, row=True),
        _f("cod_iva", TEXT, 4, "Riga: aliquota iva", dim_array=999, required=True, row=True),
        _f("id_mag_riga", NUM, 4, "Riga: magazzino", dim_array=999, row=True),
        _f("qta_evasa", NUM, 16, "Riga: quantita evasa", dim_array=999, row=True),
        _f("stato_riga", TEXT, 1, "Riga: stato (E, S, B, N)", dim_array=999, row=True),
    ),
    date_field="data_ult_mod",
)

RIGHE_ORDINI = Schema(
    "documenti/ordini-clienti/righe",
    ("sigla", "serie", "numero", "id_riga"),
    (
        _f("sigla", TEXT, 2, "Sigla documento"),
        _f("serie", NUM, 2, "Serie"),
        _f("numero", NUM, 8, "Numero"),
        *(
            Field(f.name, f.tipo, f.lunghezza, f.descrizione)
            for f in ORDINI_CLIENTI.fields
            if f.row
        ),
    ),
)


def _lookup(name: str, extra: tuple[Field, ...], int_key: bool = False) -> Schema:
    key = _f("codice", NUM if int_key else TEXT, 4 if int_key else 8, "Codice", required=True)
    descr = _f("descrizione", TEXT, 60, "Descrizione", required=True)
    return Schema(f"dati-generali/{name}", ("codice",), (key, descr, *extra), int_key=int_key)


LOOKUPS: dict[str, Schema] = {
    s.resource.split("/")[-1]: s
    for s in (
        _lookup(
            "listini",
            (
                _f("iva_inclusa", TEXT, 1, "Prezzi iva inclusa (S/N)"),
                _f("cod_valuta", NUM, 4, "Valuta"),
            ),
            int_key=True,
        ),
        _lookup(
            "valute",
            (
                _f("sigla_iso", TEXT, 3, "Sigla ISO"),
                _f("cambio", NUM, 16, "Cambio rispetto all'euro"),
            ),
            int_key=True,
        ),
        _lookup("pagamenti", (_f("tipo", TEXT, 2, "Tipo pagamento"),)),
        _lookup(
            "gruppi-merceologici",
            (
                _f("cod_grp_padre", TEXT, 8, "Gruppo padre", nullable=True),
                _f("web", TEXT, 1, "Categoria web (S/N)"),
            ),
        ),
        _lookup("categorie-statistiche-articoli", ()),
        _lookup("magazzini", (_f("indirizzo", TEXT, 80, "Indirizzo"),), int_key=True),
        _lookup(
            "sconti-listini",
            (
                _f("cod_listino", NUM, 2, "Listino"),
                _f("cod_grp_merc", TEXT, 8, "Gruppo merceologico"),
                _f("sconto", TEXT, 20, "Sconto"),
            ),
        ),
        _lookup(
            "sconti-quantita",
            (
                _f("cod_articolo", TEXT, 20, "Articolo"),
                _f("qta_minima", NUM, 16, "Quantita minima"),
                _f("sconto", TEXT, 20, "Sconto"),
            ),
        ),
        _lookup("categorie-sconti", (_f("sconto", TEXT, 20, "Sconto"),)),
    )
}
