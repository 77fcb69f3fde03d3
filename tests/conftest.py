"""Shared fixtures: one stand-in model cache and one small synthetic data set per test session.

The stand-ins are built with few MLM steps (DSGKD_TINY_STEPS) in a session cache, and the hub is
forced offline so a missing model fails at once instead of retrying a network that is not there. Progress lines
are off (DSGKD_PROGRESS=0) except where a test turns them on.
"""
import os
import tempfile

import pytest

os.environ.setdefault("DSGKD_TINY_STEPS", "30")
os.environ.setdefault("DSGKD_CACHE", tempfile.mkdtemp(prefix="dsgkd-test-cache-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DSGKD_PROGRESS", "0")  # tests that read stderr read messages; tests/test_progress.py sets its own


@pytest.fixture(scope="session")
def notes_csv(tmp_path_factory):
    from dsgkd.data.synthetic import generate_notes, write_table

    path = tmp_path_factory.mktemp("data") / "notes.csv"
    write_table(generate_notes(240, seed=7), path)
    return path


@pytest.fixture(scope="session")
def local_bert_dir(tmp_path_factory):
    """A standard Hugging Face BERT checkpoint in a plain directory, as a user would have on disk."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from dsgkd.data.synthetic import generate_notes

    out = tmp_path_factory.mktemp("local_bert")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(generate_notes(300, seed=1)["ER_DHX"], trainers.WordPieceTrainer(
        vocab_size=800, special_tokens=specials))
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                            special_tokens=[(s, tok.token_to_id(s)) for s in ("[CLS]", "[SEP]")])
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=128, do_lower_case=False)
    fast.save_pretrained(out)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertForSequenceClassification(cfg).save_pretrained(out)
    return out
