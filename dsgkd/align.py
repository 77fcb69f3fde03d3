"""DESIGN §4 import path for term alignment; the code lives in `dsgkd.core.align`."""
from dsgkd.core.align import SELECTORS, char_to_token_spans, find_terms, lexicon_terms, selector_identity

__all__ = ["SELECTORS", "char_to_token_spans", "find_terms", "lexicon_terms", "selector_identity"]
