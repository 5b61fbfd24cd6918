"""The deterministic demo data of the simulated ERP, generated from a seed.

Large tables (articles, customers) are never materialised: record `i` is computed
from (seed, i) on demand, and only a compact array of modification-day offsets
is kept so changed-since searches need not generate every record.
"""

from __future__ import annotations

import datetime as dt
import random
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import orjson

from passweb_tui.codice_fiscale import check_char

M64 = (1 << 64) - 1


def mix(x: int) -> int:
    """A 64-bit avalanche hash (splitmix64 finaliser): index -> independent-looking bits."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def fmt_date(d: dt.date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def fmt_time(secs: int) -> str:
    return f"{secs // 3600:02d}{secs // 60 % 60:02d}{secs % 60:02d}"


_TWO = [f"{i:02d}" for i in range(60)]
# every time of day as HHMMSS, by second (joined from parts: formatting each costs 0.2 s
# at every start of the simulator)
TIMES = [h + m + s for h in _TWO[:24] for m in _TWO for s in _TWO]


# Uniform 16-bit value -> days before the generation date. Most records were last
# touched months ago, a few this week and a handful today, as in a real ERP.
def _day_table() -> list[int]:
    return (
        [0] * 200
        + [1 + v % 7 for v in range(200, 2000)]
        + [8 + v % 53 for v in range(2000, 10000)]
        + [61 + v % 480 for v in range(10000, 65536)]
    )


DAY_TABLE = _day_table()
MAX_DAYS = max(DAY_TABLE)


def spread_days(n: int, seed: int, salt: int) -> array:
    """Day offsets for n records, generated in bulk (fast even for millions)."""
    raw = array("H")
    raw.frombytes(random.Random(seed * 1_000_003 + salt).randbytes(2 * n))
    return array("H", map(DAY_TABLE.__getitem__, raw))


class Source:
    """The generated base of one table: n records addressed by index, in key order."""

    n: int = 0
    days: array | None = None

    def key(self, i: int) -> Any:
        raise NotImplementedError

    def index_of(self, key: Any) -> int | None:
        raise NotImplementedError

    def record(self, i: int) -> dict[str, Any]:
        raise NotImplementedError

    def sort_key(self, key: Any) -> Any:
        return key

    def position(self, sk: Any, *, after: bool) -> int:
        """First index whose sort key is >= sk (> sk when `after`)."""
        lo = bisect_left(range(self.n), sk, key=lambda i: self.sort_key(self.key(i)))
        if after and lo < self.n and self.sort_key(self.key(lo)) == sk:
            lo += 1
        return lo

    _buckets: dict[int, array] | None = None

    def indexes_since(self, max_offset: int) -> list[int] | None:
        """Indexes whose base day offset is <= max_offset, ascending (None: no day index)."""
        if self.days is None:
            return None
        if self._buckets is None:
            buckets: dict[int, array] = {}
            for i, d in enumerate(self.days):
                b = buckets.get(d)
                if b is None:
                    b = buckets[d] = array("i")
                b.append(i)
            self._buckets = buckets
        parts = [b for d, b in self._buckets.items() if d <= max_offset]
        if len(parts) == 1:
            return list(parts[0])
        out: list[int] = []
        for b in parts:
            out.extend(b)
        out.sort()
        return out

    def count_since(self, max_offset: int) -> int:
        self.indexes_since(0)
        assert self._buckets is not None
        return sum(len(b) for d, b in self._buckets.items() if d <= max_offset)


class EagerSource(Source):
    """A small table generated up front (lookups, conditions, orders)."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        key_of: Callable[[dict[str, Any]], Any],
        sort_fn: Callable[[Any], Any] | None = None,
        days: Sequence[int] | None = None,
    ) -> None:
        self._sort_fn = sort_fn or (lambda k: k)
        order = sorted(range(len(records)), key=lambda i: self._sort_fn(key_of(records[i])))
        self._records = [records[i] for i in order]
        self._keys = [key_of(r) for r in self._records]
        self._index = {k: i for i, k in enumerate(self._keys)}
        self.n = len(self._records)
        if days is not None:
            self.days = array("H", (days[i] for i in order))

    def key(self, i: int) -> Any:
        return self._keys[i]

    def index_of(self, key: Any) -> int | None:
        return self._index.get(key)

    def record(self, i: int) -> dict[str, Any]:
        return self._records[i]

    def sort_key(self, key: Any) -> Any:
        return self._sort_fn(key)


# ---------------------------------------------------------------- words and places
NOUNS = [
    "Vite", "Bullone", "Dado", "Rondella", "Tassello", "Chiodo", "Cerniera", "Maniglia",
    "Serratura", "Lampada", "Cavo", "Interruttore", "Presa", "Tubo", "Raccordo", "Valvola",
    "Rubinetto", "Guarnizione", "Pennello", "Vernice", "Colla", "Nastro", "Martello",
    "Cacciavite", "Pinza", "Chiave", "Trapano", "Punta", "Disco", "Sega", "Metro", "Livella",
    "Guanti", "Occhiali", "Scala", "Carriola", "Secchio", "Spazzola", "Filtro", "Pompa",
]  # fmt: skip
ADJECTIVES = [
    "universale", "professionale", "rinforzato", "compatto", "regolabile", "leggero",
    "industriale", "economico", "premium", "antiscivolo", "isolato", "zincato",
    "cromato", "inox", "magnetico", "flessibile", "ricaricabile", "doppio", "rapido",
]  # fmt: skip
MATERIALS = [
    "acciaio", "ottone", "alluminio", "nylon", "PVC", "legno", "gomma", "rame", "ghisa",
    "fibra di vetro", "polipropilene", "ceramica",
]  # fmt: skip
SIZES = ["4x20", "5x30", "6x40", "8x60", "10 mm", "12 mm", "1/2\"", "3/4\"", "1 m", "2 m",
         "5 m", "10 m", "250 ml", "500 ml", "1 l", "conf. 10", "conf. 50", "conf. 100",
         "S", "M", "L", "XL"]  # fmt: skip
SURNAMES = [
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
    "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa",
    "Giordano", "Rizzo", "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro",
    "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone",
]  # fmt: skip
FIRST_NAMES = ["Marco", "Giulia", "Luca", "Francesca", "Andrea", "Chiara", "Paolo", "Sara",
               "Giorgio", "Elena", "Matteo", "Laura", "Stefano", "Anna"]  # fmt: skip
TRADES = ["Ferramenta", "Edilizia", "Impianti", "Costruzioni", "Forniture", "Idraulica",
          "Elettroforniture", "Colorificio", "Giardinaggio", "Arredamenti"]  # fmt: skip
FORMS = ["S.r.l.", "S.p.A.", "S.n.c.", "S.a.s.", "S.r.l.s."]
STREETS = ["Roma", "Garibaldi", "Mazzini", "Dante", "Verdi", "Cavour", "Matteotti",
           "Marconi", "Vittorio Veneto", "XX Settembre", "della Repubblica", "Manzoni"]  # fmt: skip
CITIES = [
    ("Milano", "20100", "MI"), ("Roma", "00100", "RM"), ("Torino", "10100", "TO"),
    ("Napoli", "80100", "NA"), ("Bologna", "40100", "BO"), ("Firenze", "50100", "FI"),
    ("Verona", "37100", "VR"), ("Padova", "35100", "PD"), ("Brescia", "25100", "BS"),
    ("Bergamo", "24100", "BG"), ("Modena", "41100", "MO"), ("Parma", "43100", "PR"),
    ("Rimini", "47900", "RN"), ("Pesaro", "61100", "PU"), ("Ancona", "60100", "AN"),
    ("Perugia", "06100", "PG"), ("Bari", "70100", "BA"), ("Palermo", "90100", "PA"),
    ("Genova", "16100", "GE"), ("Trento", "38100", "TN"), ("Udine", "33100", "UD"),
    ("Cagliari", "09100", "CA"), ("Lecce", "73100", "LE"), ("Vicenza", "36100", "VI"),
]  # fmt: skip
PAYMENTS = [
    ("BB30", "Bonifico bancario 30 gg d.f.", "BB"), ("BB60", "Bonifico bancario 60 gg d.f.", "BB"),
    ("RD", "Rimessa diretta", "RD"), ("CC", "Carta di credito", "CC"),
    ("RB30", "Ricevuta bancaria 30 gg", "RB"), ("RB3060", "Ricevuta bancaria 30/60 gg", "RB"),
    ("CON", "Contrassegno", "CO"), ("PP", "PayPal", "CC"),
]  # fmt: skip
GROUP_TOPS = ["Ferramenta", "Elettricita", "Idraulica", "Utensileria", "Vernici", "Giardino"]
GROUP_MIDS = ["Base", "Professionale", "Accessori"]
GROUP_LEAVES = ["Serie A", "Ricambi"]
NOTES = ["Ideale per uso professionale.", "Confezione singola.", "Conforme alle normative CE.",
         "Garanzia 2 anni.", ""]  # fmt: skip
VAT_CODES = ["22"] * 8 + ["10", "4"]
UNITS = ["PZ"] * 6 + ["KG", "MT", "CF"]


def _ean_weights() -> list[int]:
    # weighted digit sums of 4-digit blocks at EAN positions with weights 1,3,1,3
    digits = range(10)
    return [a + 3 * b + c + 3 * d for a in digits for b in digits for c in digits for d in digits]


EAN_W = _ean_weights()


class Catalogue:
    """Everything derived from the seed that records refer to: groups, lookups."""

    def __init__(self, seed: int, gen_now: dt.datetime) -> None:
        self.seed = seed
        self.gen_now = gen_now
        gen_date = gen_now.date()
        self.day_str = [fmt_date(gen_date - dt.timedelta(days=o)) for o in range(MAX_DAYS + 1)]
        self.gen_secs = gen_now.hour * 3600 + gen_now.minute * 60 + gen_now.second
        rng = random.Random(seed * 31 + 5)
        # product groups: a 3-level tree, 6 tops x 3 x 2 (60 groups)
        groups: list[dict[str, Any]] = []
        leaves: list[tuple[str, str | None]] = []  # (leaf code, web category for it)
        n = 0

        def add(descr: str, parent: str | None, web: bool) -> str:
            nonlocal n
            n += 1
            code = f"G{n:03d}"
            groups.append(
                {
                    "codice": code,
                    "descrizione": descr,
                    "cod_grp_padre": parent,
                    "web": "S" if web else "N",
                }
            )
            return code

        for top in GROUP_TOPS:
            top_web = rng.random() < 0.85
            tcode = add(top, None, top_web)
            for mid in GROUP_MIDS:
                mid_web = top_web and rng.random() < 0.8
                mcode = add(f"{top} {mid.lower()}", tcode, mid_web)
                for leaf in GROUP_LEAVES:
                    leaf_web = mid_web and rng.random() < 0.85
                    lcode = add(f"{top} {mid.lower()} {leaf.lower()}", mcode, leaf_web)
                    web = (
                        lcode if leaf_web else (mcode if mid_web else (tcode if top_web else None))
                    )
                    leaves.append((lcode, web))
        self.groups = groups
        self.leaves = leaves
        rates = {"EUR": 1.0, "USD": 1.08, "GBP": 0.85, "CHF": 0.94}
        jitter = random.Random(seed * 31 + 6)
        self.currencies = [
            {
                "codice": i + 1,
                "descrizione": name,
                "sigla_iso": iso,
                "cambio": 1.0 if iso == "EUR" else round(rates[iso] + jitter.uniform(-0.03, 0.03), 4),
            }
            for i, (iso, name) in enumerate(
                [("EUR", "Euro"), ("USD", "Dollaro USA"), ("GBP", "Sterlina"), ("CHF", "Franco svizzero")]
            )
        ]  # fmt: skip
        names = ["Pubblico", "Rivenditori", "Grossisti", "Installatori", "Promozioni",
                 "Agenti", "Web", "Export", "Export USD"]  # fmt: skip
        self.price_lists = [
            {
                "codice": i + 1,
                "descrizione": f"Listino {i + 1} - {name}",
                "iva_inclusa": "S" if i in (0, 6) else "N",
                "cod_valuta": 2 if i == 8 else 1,
            }
            for i, name in enumerate(names)
        ]
        self.payments = [{"codice": c, "descrizione": d, "tipo": t} for c, d, t in PAYMENTS]
        self.lookups: dict[str, list[dict[str, Any]]] = {
            "listini": self.price_lists,
            "valute": self.currencies,
            "pagamenti": self.payments,
            "gruppi-merceologici": groups,
            "categorie-statistiche-articoli": [
                {"codice": f"S{i + 1:02d}", "descrizione": d}
                for i, d in enumerate(
                    [
                        "Alta rotazione",
                        "Media rotazione",
                        "Bassa rotazione",
                        "Stagionali",
                        "Fine serie",
                        "Novita",
                        "Importati",
                    ]
                )
            ],
            "magazzini": [
                {"codice": 1, "descrizione": "Magazzino centrale", "indirizzo": "Via Roma 1"},
                {"codice": 2, "descrizione": "Deposito nord", "indirizzo": "Via Milano 20"},
                {"codice": 3, "descrizione": "Negozio", "indirizzo": "Piazza Garibaldi 3"},
            ],
            "sconti-listini": [
                {
                    "codice": f"SL{i + 1:02d}",
                    "descrizione": f"Sconto listino {lst} su {g}",
                    "cod_listino": lst,
                    "cod_grp_merc": g,
                    "sconto": s,
                }
                for i, (lst, g, s) in enumerate(
                    [(2, "G001", "10"), (3, "G001", "15+5"), (2, "G014", "5"), (4, "G027", "8")]
                )
            ],
            "sconti-quantita": [
                {
                    "codice": f"SQ{i + 1:02d}",
                    "descrizione": f"Sconto quantita {q}",
                    "cod_articolo": f"ART{i * 7 + 1:07d}",
                    "qta_minima": q,
                    "sconto": s,
                }
                for i, (q, s) in enumerate([(10, "5"), (50, "10"), (100, "12+3")])
            ],
            "categorie-sconti": [
                {"codice": c, "descrizione": f"Categoria sconto {c}", "sconto": s}
                for c, s in [("A", "5"), ("B", "10"), ("C", "10+5")]
            ],
        }


class ArticleSource(Source):
    """Articles: ART0000001.. then a few KIT/0001.. codes (keys that need hex encoding)."""

    PROFILES = 2048
    VARIANTS = 16

    def __init__(self, n: int, cat: Catalogue) -> None:
        self.n = n
        self.cat = cat
        self.n_kit = min(max(n // 250, 1), 9999) if n >= 20 else 0
        self.n_reg = n - self.n_kit
        self.salt = mix(cat.seed * 0x1000193 + 11)
        self.days = spread_days(n, cat.seed, 1)
        self.ean_prefix = 800 + cat.seed % 100  # first 3 digits, then the index on 9
        digits = f"{self.ean_prefix:03d}"
        self.ean_pre_w = int(digits[0]) + 3 * int(digits[1]) + int(digits[2])
        rng = random.Random(cat.seed * 31 + 7)
        self._blob_cache: dict[tuple[str, ...], list[bytes]] = {}
        # each profile's variants are made on first use: a small catalogue touches few
        self._profiles = [(*self._profile(rng), rng.getrandbits(63)) for _ in range(self.PROFILES)]
        self._made: list[tuple[dict[str, Any], list[Any]] | None] = [None] * self.PROFILES

    def _profile(self, rng: random.Random) -> tuple[dict[str, Any], list[float]]:
        leaf, web = rng.choice(self.cat.leaves)
        noun, adj, mat = rng.choice(NOUNS), rng.choice(ADJECTIVES), rng.choice(MATERIALS)
        r = rng.random()
        if r < 0.86:
            sites = [[1, "S"]]
        elif r < 0.93:
            sites = [[1, "N"]]
        elif r < 0.98:
            sites = [[1, "S"], [2, "S"]]
        else:
            sites = [[1, "S"], [2, "N"], [3, "S"]]
        n_lists = rng.choice([1, 2, 3, 3, 4, 4, 5, 6, 9])
        factors = [1.0] + [round(1 - 0.04 * k - rng.random() * 0.03, 3) for k in range(1, 9)]
        base = {
            "codice": "",
            "descrizione": f"{noun} {adj} {mat}",
            "descr_agg": f"{noun} {adj} in {mat}. {rng.choice(NOTES)}".strip(),
            "prz_listino": None,
            "cod_grp_merc": leaf,
            "cat_web": web,
            "alq_iva": rng.choice(VAT_CODES),
            "um_principale": rng.choice(UNITS),
            "qta_inventario": 0,
            "qta_carico": 0,
            "qta_scarico": 0,
            "ord_cli_e": 0,
            "gest_precanc": "N",
            "gest_annullato": "N",
            "trasf_sito": sites,
            "pubblica": [[s, "S" if f == "S" and rng.random() < 0.95 else "N"] for s, f in sites],
            "offerta": [[s, "S" if rng.random() < 0.08 else "N"] for s, _ in sites],
            "novita": [[s, "S" if rng.random() < 0.05 else "N"] for s, _ in sites],
            "peso": round(rng.uniform(0.01, 25), 3),
            "cod_barre": "",
            "dt_mod_sistema": "",
            "ora_mod_sistema": "",
        }
        return base, factors[:n_lists]

    def key(self, i: int) -> str:
        if i < self.n_reg:
            return f"ART{i + 1:07d}"
        return f"KIT/{i - self.n_reg + 1:04d}"

    def index_of(self, key: Any) -> int | None:
        if not isinstance(key, str) or len(key) < 5:
            return None
        if key.startswith("ART") and len(key) == 10 and key[3:].isdigit():
            i = int(key[3:]) - 1
            return i if 0 <= i < self.n_reg else None
        if key.startswith("KIT/") and len(key) == 8 and key[4:].isdigit():
            k = int(key[4:]) - 1
            return self.n_reg + k if 0 <= k < self.n_kit else None
        return None

    def profile(self, k: int) -> tuple[dict[str, Any], list[Any]]:
        """Profile k's base record and its (description, price list) variants."""
        made = self._made[k]
        if made is None:
            base, factors, h = self._profiles[k]
            made = self._made[k] = (base, self._variants(base, factors, h))
        return made

    def _variants(self, base: dict[str, Any], factors: list[float], h: int) -> list[Any]:
        # a few (description, price list) variants per profile, built once: a record
        # then costs a dict copy and a handful of assignments
        out = []
        for v in range(self.VARIANTS):
            x = mix(h + v)
            price = (50 + x % 25000) / 100
            prices = [[k + 1, round(price * f, 2)] for k, f in enumerate(factors)]
            out.append((f"{base['descrizione']} {SIZES[(x >> 20) % len(SIZES)]}", prices))
        return out

    def record(self, i: int) -> dict[str, Any]:
        h = mix(self.salt + i)
        base, variants = self.profile(h & 2047)
        rec = base.copy()
        rec["codice"] = self.key(i)
        rec["descrizione"], rec["prz_listino"] = variants[(h >> 11) & 15]
        rec["qta_inventario"] = (h >> 31) % 400
        rec["qta_carico"] = (h >> 40) % 150
        rec["qta_scarico"] = (h >> 48) % 120
        rec["ord_cli_e"] = (h >> 56) % 8
        flags = (h >> 20) % 1000
        if flags < 25:
            rec["gest_precanc"] = "S"
        elif flags < 35:
            rec["gest_annullato"] = "S"
        a, b = divmod(i % 100_000_000, 10000)
        check = (10 - (self.ean_pre_w + 3 * ((i // 10**8) % 10) + EAN_W[a] + EAN_W[b]) % 10) % 10
        rec["cod_barre"] = f"{self.ean_prefix}{i % 1_000_000_000:09d}{check}"
        day = self.days[i]  # type: ignore[index]
        secs = (h >> 5) % 86400
        if day == 0:
            secs %= self.cat.gen_secs + 1
        rec["dt_mod_sistema"] = self.cat.day_str[day]
        rec["ora_mod_sistema"] = TIMES[secs]
        return rec

    # Fields that come from a record's profile (same bytes for every record of a
    # profile variant) and those computed from its index.
    STATIC = ("descrizione", "descr_agg", "prz_listino", "cod_grp_merc", "cat_web", "alq_iva",
              "um_principale", "trasf_sito", "pubblica", "offerta", "novita", "peso")  # fmt: skip
    DYNAMIC = ("codice", "qta_inventario", "qta_carico", "qta_scarico", "ord_cli_e",
               "gest_precanc", "gest_annullato", "cod_barre", "dt_mod_sistema",
               "ora_mod_sistema")  # fmt: skip

    def encoder(self, fields: Sequence[str] | None) -> Callable[[int], Any] | None:
        """A function i -> the record's JSON (an orjson Fragment) with the selected
        fields, or None when the selection is not one it knows (then records go as dicts).

        This is the hot path of a full catalogue read: the profile part of each
        record is encoded once per field selection, so a record costs one hash and
        one string format instead of a dict, a projection and an encoding."""
        names = tuple(fields) if fields else self.STATIC + self.DYNAMIC
        if "codice" not in names or not set(names) <= set(self.STATIC + self.DYNAMIC):
            return None
        static = tuple(n for n in names if n in self.STATIC)
        blobs = self._blob_cache.get(static)
        if blobs is None:
            blobs = []
            for base, variants in map(self.profile, range(self.PROFILES)):
                for descr, prices in variants:
                    values = {**base, "descrizione": descr, "prz_listino": prices}
                    blobs.append(
                        b"".join(
                            b"," + orjson.dumps(n) + b":" + orjson.dumps(values[n]) for n in static
                        )
                    )
            if len(self._blob_cache) > 8:
                self._blob_cache.clear()
            self._blob_cache[static] = blobs
        if set(self.DYNAMIC) <= set(names):
            return partial(self._encode, blobs)
        # a subset of the computed fields: a format template picks them
        numeric = {"qta_inventario", "qta_carico", "qta_scarico", "ord_cli_e"}
        template = "{{" + ",".join(
            f'"{n}":{{{n}}}' if n in numeric else f'"{n}":"{{{n}}}"'
            for n in self.DYNAMIC
            if n in names
        )
        return partial(self._encode_some, blobs, template)

    def _encode_some(self, blobs: list[bytes], template: str, i: int) -> Any:
        h = mix(self.salt + i)
        flags = (h >> 20) % 1000
        a, b = divmod(i % 100_000_000, 10000)
        check = (10 - (self.ean_pre_w + 3 * ((i // 10**8) % 10) + EAN_W[a] + EAN_W[b]) % 10) % 10
        day = self.days[i]  # type: ignore[index]
        secs = (h >> 5) % 86400
        if day == 0:
            secs %= self.cat.gen_secs + 1
        text = template.format_map(
            {
                "codice": self.key(i),
                "qta_inventario": (h >> 31) % 400,
                "qta_carico": (h >> 40) % 150,
                "qta_scarico": (h >> 48) % 120,
                "ord_cli_e": (h >> 56) % 8,
                "gest_precanc": "S" if flags < 25 else "N",
                "gest_annullato": "S" if 25 <= flags < 35 else "N",
                "cod_barre": f"{self.ean_prefix}{i % 1_000_000_000:09d}{check}",
                "dt_mod_sistema": self.cat.day_str[day],
                "ora_mod_sistema": TIMES[secs],
            }
        )
        return orjson.Fragment(
            text.encode() + blobs[(h & 2047) * self.VARIANTS + ((h >> 11) & 15)] + b"}"
        )

    def _encode(self, blobs: list[bytes], i: int) -> Any:
        h = mix(self.salt + i)
        flags = (h >> 20) % 1000
        a, b = divmod(i % 100_000_000, 10000)
        check = (10 - (self.ean_pre_w + 3 * ((i // 10**8) % 10) + EAN_W[a] + EAN_W[b]) % 10) % 10
        day = self.days[i]  # type: ignore[index]
        secs = (h >> 5) % 86400
        if day == 0:
            secs %= self.cat.gen_secs + 1
        key = f"ART{i + 1:07d}" if i < self.n_reg else f"KIT/{i - self.n_reg + 1:04d}"
        text = (
            f'{{"codice":"{key}","qta_inventario":{(h >> 31) % 400},'
            f'"qta_carico":{(h >> 40) % 150},"qta_scarico":{(h >> 48) % 120},'
            f'"ord_cli_e":{(h >> 56) % 8},"gest_precanc":"{"S" if flags < 25 else "N"}",'
            f'"gest_annullato":"{"S" if 25 <= flags < 35 else "N"}",'
            f'"cod_barre":"{self.ean_prefix}{i % 1_000_000_000:09d}{check}",'
            f'"dt_mod_sistema":"{self.cat.day_str[day]}","ora_mod_sistema":"{TIMES[secs]}"'
        )
        return orjson.Fragment(
            text.encode() + blobs[(h & 2047) * self.VARIANTS + ((h >> 11) & 15)] + b"}"
        )

    # attachments: (tipo, nome, size, dt_mod), bytes derived from the index
    def attachments(self, i: int) -> list[tuple[str, str, int, str]]:
        h = mix(self.salt ^ (i * 0x2545F491 + 3))
        out = []
        day = min(self.days[i] + (h >> 60), MAX_DAYS)  # type: ignore[index]
        secs = (h >> 8) % 86400
        if day == 0:  # today's: not later than the data was generated (as records)
            secs %= self.cat.gen_secs + 1
        stamp = f"{self.cat.day_str[day]} {fmt_time(secs)}"
        if h % 10 < 8:
            out.append(("immagine", "immagine", 800 + (h >> 4) % 6000, stamp))
        if (h >> 12) % 10 < 5:
            out.append(("scheda", "scheda", 1500 + (h >> 16) % 9000, stamp))
        return out

    def attachment_bytes(self, i: int, nome: str, size: int) -> bytes:
        salt = {"immagine": 1, "scheda": 2, "icona": 3}.get(nome, 4)
        rnd = random.Random(self.salt ^ i ^ salt).randbytes(size)
        if nome != "scheda":  # the image and its renditions
            head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
            return head + rnd[len(head) :]
        head = b"%PDF-1.4\n% scheda tecnica " + self.key(i).encode() + b"\n"
        tail = b"\n%%EOF\n"
        return head + rnd[len(head) : size - len(tail)] + tail


class CustomerSource(Source):
    """Customers 501.00001..; codes wide enough to keep key order = index order."""

    def __init__(self, n: int, cat: Catalogue) -> None:
        self.n = n
        self.cat = cat
        self.width = max(5, len(str(n)))
        self.salt = mix(cat.seed * 0x1000193 + 23)
        self.days = spread_days(n, cat.seed, 2)

    def key(self, i: int) -> str:
        return f"501.{i + 1:0{self.width}d}"

    def index_of(self, key: Any) -> int | None:
        if isinstance(key, str) and key.startswith("501.") and len(key) == 4 + self.width:
            tail = key[4:]
            if tail.isdigit():
                i = int(tail) - 1
                return i if 0 <= i < self.n else None
        return None

    def record(self, i: int) -> dict[str, Any]:
        h = mix(self.salt + i)
        g = mix(h)
        surname = SURNAMES[h % 30]
        if (h >> 5) % 10 < 7:
            name = f"{TRADES[(h >> 9) % 10]} {surname} {FORMS[(h >> 13) % 5]}"
            slug = f"info@{surname.lower().replace(' ', '')}{i + 1}.it"
            vat = f"{g % 10**11:011d}"
            cf = vat
        else:
            first = FIRST_NAMES[(h >> 9) % 14]
            name = f"{surname} {first}"
            slug = f"{first.lower()}.{surname.lower().replace(' ', '')}{i + 1}@mail.it"
            vat = ""
            letters = "".join(c for c in surname.upper() if c.isalpha())
            cf = f"{letters[:3]:X<3}{first[:3].upper()}{(g >> 3) % 100:02d}A01H501"
            cf += check_char(cf)
        city, cap, prov = CITIES[(h >> 17) % len(CITIES)]
        r = (h >> 22) % 100
        listino = 1 if r < 70 else (2 if r < 85 else (3 if r < 95 else 4))
        v = (h >> 29) % 100
        valuta = 1 if v < 92 else (2 if v < 96 else (3 if v < 98 else 4))
        s = (h >> 36) % 10
        sconto = ["", "", "", "", "5", "10", "10+5", "3", "15", "20+10"][s]
        day = self.days[i]  # type: ignore[index]
        return {
            "codice": self.key(i),
            "ragione_sociale": name,
            "partita_iva": vat,
            "codice_fiscale": cf,
            "indirizzo": f"Via {STREETS[(h >> 40) % 12]} {1 + (h >> 44) % 180}",
            "cap": cap,
            "localita": city,
            "provincia": prov,
            "nazione": "IT",
            "email": slug,
            "telefono": f"0{(g >> 40) % 1000:03d} {(g >> 10) % 1000000:06d}",
            "cod_pagamento": PAYMENTS[(h >> 52) % len(PAYMENTS)][0],
            "cod_listino": listino,
            "valuta": valuta,
            "sconto": sconto,
            "cat_sconto": ["", "", "A", "B", "C"][(h >> 56) % 5],
            "trasf_sito": [[1, "S" if (h >> 60) % 16 < 14 else "N"]],
            "data_ult_mod": self.cat.day_str[day],
        }


def conditions(cat: Catalogue, customers: CustomerSource, articles: ArticleSource) -> EagerSource:
    """Particolarita: special prices/discounts of about a quarter of the customers."""
    rng = random.Random(cat.seed * 31 + 9)
    days = spread_days(min(customers.n * 3, 300_000) + 1, cat.seed, 3)
    records: list[dict[str, Any]] = []
    out_days: list[int] = []
    limit = min(customers.n, 100_000)
    n_art = max(articles.n_reg, 0)
    for j in range(limit):
        if rng.random() >= 0.25:
            continue
        conto = customers.key(j)
        seen: set[str] = set()
        for _ in range(rng.randint(1, 3)):
            if n_art and rng.random() < 0.7:
                tipo, code = "A", articles.key(rng.randrange(n_art))
            else:
                tipo, code = "G", rng.choice(cat.leaves)[0]
            key = f"{conto}+{tipo}+{code}"
            if key in seen:
                continue
            seen.add(key)
            d = days[len(records) % len(days)]
            secs = rng.randrange(86400)
            if d == 0:
                secs %= cat.gen_secs + 1
            start = rng.random() < 0.3
            records.append(
                {
                    "codice": key,
                    "cod_conto": conto,
                    "tipo": tipo,
                    "cod_articolo": code if tipo == "A" else None,
                    "cod_grp_merc": code if tipo == "G" else None,
                    "prezzo": round(rng.uniform(1, 200), 2)
                    if tipo == "A" and rng.random() < 0.6
                    else None,
                    "sconto": rng.choice(["", "5", "10", "10+5", "20"]),
                    "dt_inizio": cat.day_str[min(d + 30, MAX_DAYS)] if start else None,
                    "dt_fine": fmt_date(cat.gen_now.date() + dt.timedelta(days=365))
                    if start
                    else None,
                    "dt_mod_sistema": cat.day_str[d],
                    "ora_mod_sistema": fmt_time(secs),
                }
            )
            out_days.append(d)
    return EagerSource(records, lambda r: r["codice"], days=out_days)


def doc_sort_key(key: Any) -> tuple[str, int, int]:
    """Documents sort by sigla, serie, numero (numbers compared as numbers)."""
    parts = str(key).split("+")
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return (parts[0], int(parts[1]), int(parts[2]))
    return (str(key), -1, -1)


def orders(
    cat: Catalogue, n: int, customers: CustomerSource, articles: ArticleSource
) -> EagerSource:
    """Existing customer orders OC+1+1..n with a few rows each."""
    rng = random.Random(cat.seed * 31 + 13)
    records: list[dict[str, Any]] = []
    days: list[int] = []
    for k in range(n):
        number = k + 1
        age = rng.randrange(0, 120)
        rows = rng.randint(1, 6)
        fulfil = rng.random()
        rec: dict[str, Any] = {
            "sigla": "OC",
            "serie": 1,
            "numero": number,
            "cod_conto": customers.key(rng.randrange(customers.n)) if customers.n else "501.00001",
            "data_documento": cat.day_str[min(age, MAX_DAYS)],
            "id_pagamento": rng.choice(PAYMENTS)[0],
            "id_valuta": 1,
            "nota": rng.choice(["", "", "Consegna al piano", "Telefonare prima", "Urgente"]),
            "attivo": "S",
            "num_sito_web": 0,
            "variato": "N",
            "doc_collegati": [],
            "data_ult_mod": "",
        }
        cols: dict[str, list[list[Any]]] = {
            f: []
            for f in ("id_riga", "tp_riga", "codice_articolo", "descr_riga", "quantita",
                      "prezzo", "sconto", "cod_iva", "id_mag_riga", "qta_evasa", "stato_riga")
        }  # fmt: skip
        all_done = fulfil < 0.25
        for r in range(1, rows + 1):
            ai = rng.randrange(articles.n_reg) if articles.n_reg else 0
            art = articles.record(ai) if articles.n else None
            qty = rng.randint(1, 20)
            done = qty if all_done else (rng.randint(0, qty) if fulfil < 0.4 else 0)
            values = {
                "id_riga": r,
                "tp_riga": "R",
                "codice_articolo": art["codice"] if art else "",
                "descr_riga": art["descrizione"] if art else "",
                "quantita": qty,
                "prezzo": art["prz_listino"][0][1] if art else 1.0,
                "sconto": rng.choice(["", "", "5", "10"]),
                "cod_iva": art["alq_iva"] if art else "22",
                "id_mag_riga": 1,
                "qta_evasa": done,
                "stato_riga": "E" if all_done else "",
            }
            for f, v in values.items():
                cols[f].append([r, v])
        rec.update(cols)
        if all_done:
            rec["doc_collegati"] = [f"BC+1+{number}"]
        mod = max(0, age - rng.randrange(0, 5))
        rec["data_ult_mod"] = cat.day_str[min(mod, MAX_DAYS)]
        records.append(rec)
        days.append(mod)
    return EagerSource(
        records,
        lambda r: f"{r['sigla']}+{r['serie']}+{r['numero']}",
        sort_fn=doc_sort_key,
        days=days,
    )
