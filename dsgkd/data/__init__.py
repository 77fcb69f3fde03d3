"""Labelled notes in (emr), synthetic notes and corpora out (synthetic)."""
