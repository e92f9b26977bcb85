"""Text normalization shared by matching, vocabulary and feedback: one form for both sides."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from digest.ranking.data import PaperDoc

# A bound prefix is glued to the next word, which makes "multi-modal", "multi modal" and
# "multimodal" one token ("multimodal"); other hyphens are spaces, so "vision-language"
# is "vision language". The price: "modal" alone does not match "multi-modal".
GLUE_PREFIXES = frozenset({"multi", "pre", "post", "non", "semi", "co", "re", "sub", "inter", "intra", "fine"})

# Abbreviations are expanded (never contracted), on both sides: "LLMs" and "large
# language models" both become "large language model", and a topic "language model"
# still matches a paper that only says "LLM".
ABBREVIATIONS = {
    "llm": "large language model",
    "mllm": "multimodal large language model",
    "lmm": "large multimodal model",
    "lm": "language model",
    "vlm": "vision language model",
    "vla": "vision language action model",
    "asr": "speech recognition",
    "tts": "text to speech",
    "rl": "reinforcement learning",
    "rlhf": "reinforcement learning from human feedback",
    "rag": "retrieval augmented generation",
    "moe": "mixture of experts",
    "nlp": "natural language processing",
    "cv": "computer vision",
    "gnn": "graph neural network",
    "cnn": "convolutional neural network",
    "vit": "vision transformer",
    "dit": "diffusion transformer",
    "ldm": "latent diffusion model",
    "gan": "generative adversarial network",
    "sft": "supervised fine-tuning",
    "dpo": "direct preference optimization",
    "vqa": "visual question answering",
    "ocr": "optical character recognition",
    "ner": "named entity recognition",
    "nerf": "neural radiance field",
    "lora": "low-rank adaptation",
}
# Long forms that mean the same as a shorter canonical one.
SYNONYMS = {"automatic speech recognition": "speech recognition"}

STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "into", "is",
    "it", "its", "of", "on", "or", "our", "the", "their", "this", "to", "towards", "via", "we",
    "what", "when", "where", "which", "while", "with", "without",
})  # fmt: skip

# English function words (NLTK's list, without contractions, and a few more). They stay
# in topics and phrases ("speech to text"), but are never evidence of what a paper is
# about, so pseudo-relevance feedback never takes them as expansion terms.
FUNCTION_WORDS = STOPWORDS | frozenset({
    "about", "above", "across", "after", "again", "against", "all", "also", "am", "among",
    "any", "been", "before", "being", "below", "between", "both", "but", "can", "could",
    "did", "do", "does", "doing", "down", "during", "each", "either", "few", "further",
    "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "however",
    "i", "if", "itself", "just", "may", "me", "might", "more", "most", "must", "my", "neither",
    "no", "nor", "not", "now", "off", "once", "only", "other", "ours", "out", "over", "own",
    "same", "shall", "she", "should", "so", "some", "such", "than", "that", "theirs", "them",
    "themselves", "then", "there", "therefore", "these", "they", "those", "through", "thus",
    "too", "toward", "under", "until", "up", "upon", "us", "very", "was", "were", "whether",
    "who", "whom", "why", "will", "within", "would", "yet", "you", "your",
})  # fmt: skip

# A phrase never matches across these: sentence ends, commas, brackets, keyword borders.
# A period inside a word or number ("2.5", "e.g") is not a border.
_BORDERS = re.compile(r"[,;:!?()\[\]{}|\"“”«»]|\.(?!\w)")
_NON_WORD = re.compile(r"[\W_]+")
_APOSTROPHES = re.compile("['\u2019`]")  # ASCII, typographic and grave apostrophes


def _fold(text: str) -> str:
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return text.casefold()


def stem(token: str) -> str:
    """Strip a plural: ies -> y; sses, xes, ches, shes -> drop es; s -> drop (not ss, us, is)."""
    if len(token) <= 3 or token[-1] != "s" or not token.isalpha():
        return token
    if token.endswith("ies"):
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "ches", "shes")):
        return token[:-2]
    if token.endswith(("ss", "us", "is")):
        return token
    return token[:-1]


def _base_tokens(chunk: str) -> list[str]:
    """Tokens of a border-free chunk of folded text: prefixes glued, plurals stripped."""
    out: list[str] = []
    pending = ""
    for raw in _NON_WORD.split(chunk):
        if not raw:
            continue
        if pending:
            raw, pending = pending + raw, ""
        elif raw in GLUE_PREFIXES:
            pending = raw
            continue
        out.append(raw)
    if pending:
        out.append(pending)
    return out


_EXPANSIONS = {stem(abbr): tuple(stem(t) for t in _base_tokens(long)) for abbr, long in ABBREVIATIONS.items()}


@lru_cache(maxsize=1 << 17)
def _token(raw: str) -> tuple[str, ...]:
    base = stem(raw)
    return _EXPANSIONS.get(base, (base,))


def _chunk_tokens(chunk: str) -> list[str]:
    return [t for raw in _base_tokens(chunk) for t in _token(raw)]


_SYNONYMS = [
    (f" {' '.join(_chunk_tokens(long))} ", f" {' '.join(_chunk_tokens(short))} ") for long, short in SYNONYMS.items()
]


def normalize_text(text: str) -> str:
    """Normalize text for phrase matching, padded with spaces: ``" tok tok | tok "``.

    ``|`` marks a border a phrase may not cross. A phrase occurs in a text when
    ``" " + profile_terms(phrase) + " "`` is a substring of ``normalize_text(text)``.
    """
    text = _fold(_APOSTROPHES.sub("", text))
    parts = [" ".join(tokens) for chunk in _BORDERS.split(text) if (tokens := _chunk_tokens(chunk))]
    padded = f" {' | '.join(parts)} "
    for long, short in _SYNONYMS:
        padded = padded.replace(long, short)
    return padded


def profile_terms(phrase: str) -> str:
    """The normalized form of a topic, exclude or learned term ("" when nothing is left).

    Idempotent, so normalized terms (as :func:`learn_weights` stores them) can be fed back.
    """
    return normalize_text(phrase).strip()


def _keywords_text(keywords: Iterable[str]) -> str:
    parts = [n for kw in keywords if (n := profile_terms(kw))]
    return f" {' | '.join(parts)} "


def doc_fields(paper: PaperDoc) -> tuple[str, str, str, str]:
    """A paper's normalized texts, in FIELDS order."""
    return (
        normalize_text(paper.title),
        _keywords_text(paper.ai_keywords),
        normalize_text(paper.ai_summary),
        normalize_text(paper.abstract),
    )


def normalize_name(name: str) -> str:
    """Person or organization name for follow matching: case, diacritics, spacing."""
    return " ".join(_NON_WORD.split(_fold(name))).strip()
