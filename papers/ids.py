"""arXiv ids as readers give them: bare ids, arXiv, Hugging Face and DOI links, one spelling kept.

Pure: no Django, no network. The stored spelling is the new-style id without its version
(`2511.04570`); every form a reader pastes and every library field is reduced to it.
"""

import re
from dataclasses import dataclass

# New-style ids: YYMM.NNNN (2007 to 2014) or YYMM.NNNNN (2015 on), an optional version.
_ID = r"(?P<id>\d{2}(?:0[1-9]|1[0-2])\.\d{4,5})(?:v\d+)?"
_HOSTS = r"(?:https?://)?(?:(?:www|export)\.)?"
_FORMS = [
    re.compile(rf"(?i)(?:arxiv:\s*)?{_ID}"),
    re.compile(rf"(?i){_HOSTS}arxiv\.org/(?:abs|pdf|html)/{_ID}(?:\.pdf)?/?"),
    re.compile(rf"(?i){_HOSTS}huggingface\.co/papers/{_ID}/?"),
    re.compile(rf"(?i)(?:(?:https?://)?(?:dx\.)?doi\.org/|doi:\s*)?10\.48550/arxiv\.{_ID}"),
]
# An id inside free text (a BibTeX note, a Zotero "extra" line, a URL field), not part of a
# longer number: "12511.04570" and "2511.045701" are not ids.
_WITHIN = re.compile(r"(?<!\d)(?P<id>\d{2}(?:0[1-9]|1[0-2])\.\d{4,5})(?:v\d+)?(?![\d])")
_SEPARATORS = re.compile(r"[\s,;]+")
_QUERY = re.compile(r"[?#].*$")


@dataclass(frozen=True)
class ParsedIds:
    """What a pasted list held: the ids in first-seen order, and the pieces that were none."""

    ids: tuple[str, ...]
    bad: tuple[str, ...]


def _valid(found: str) -> str | None:
    # Four digits after the dot until 2014, five from 2015 (arXiv's identifier scheme).
    return found if (len(found) == 10) == (int(found[:2]) >= 15) else None


def arxiv_id(token: str) -> str | None:
    """The id one pasted token names (a bare id, an arXiv, Hugging Face or DOI link), or None."""
    token = _QUERY.sub("", token.strip())
    for form in _FORMS:
        match = form.fullmatch(token)
        if match:
            return _valid(match.group("id"))
    return None


def parse_arxiv_ids(text: str) -> ParsedIds:
    """Split a pasted list (one per line, or separated by commas or spaces) into ids and bad pieces."""
    ids: dict[str, None] = {}
    bad: dict[str, None] = {}
    for token in _SEPARATORS.split(text):
        if not token:
            continue
        found = arxiv_id(token)
        if found:
            ids.setdefault(found)
        else:
            bad.setdefault(token)
    return ParsedIds(ids=tuple(ids), bad=tuple(bad))


def find_arxiv_id(text: str) -> str | None:
    """The first arXiv id mentioned anywhere in a free-text field, or None.

    For library fields (`eprint`, `url`, `doi`, `note`, `extra`), where an id sits among other
    words: "arXiv:2511.04570 [cs.CL]", "https://arxiv.org/abs/2511.04570v2", "10.48550/arXiv.2511.04570".
    """
    for match in _WITHIN.finditer(text or ""):
        if _valid(match.group("id")):
            return match.group("id")
    return None
