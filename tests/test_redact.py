"""The one rule for what a message may show of a cell, a header or a secret URL."""
from dsgkd.redact import mask, redact_url


def test_mask_shows_the_first_characters_and_the_length_never_the_whole():
    note = "3일전부터 fever, vomiting x3, r/o AGE"
    shown = mask(note)
    assert "fever" not in shown and shown.startswith("'3일전") and f"({len(note)} chars)" in shown
    assert mask("1.0") == "'1.0'" and mask("") == "''" and mask(None) == "'Non…' (4 chars)"


def test_redact_url_hides_passwords_in_userinfo_and_query_but_keeps_the_rest():
    url = "postgresql+psycopg2://bob:s3cr%40t@db.example:5432/optuna?sslmode=require&password=hunter2&x=1"
    out = redact_url(f"storage {url} refused")
    assert "s3cr" not in out and "hunter2" not in out
    assert out == ("storage postgresql+psycopg2://bob:***@db.example:5432/optuna?sslmode=require&password=***&x=1"
                   " refused")
    for safe in ("sqlite:////runs/a/optuna.db", "http://user@host/x", "file:///tmp/mlruns"):
        assert redact_url(safe) == safe
