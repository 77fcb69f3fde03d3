"""Tiny tokenizers with hand-written vocabularies, so alignment expectations can be checked by hand."""
import unicodedata

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

_WORDS = ["fever", "cough", "r", "/", "o", "t", "-", "tube", "abd", ".", "sp", "(", "+", ")", "3", "x"]


def _jamo(s: str) -> list[str]:
    return list(unicodedata.normalize("NFD", s))


def wordpiece(uncased: bool) -> PreTrainedTokenizerFast:
    words = _WORDS + (["T", "Abd", "Sp", "O", "SpO"] if not uncased else [])
    subwords = ["##o", "##2", "##O", "##ver", "##로", "##와", "##3"]
    hangul = ["일", "전", "부터", "##부터", "##일", "##전", "로", "와"]
    if uncased:  # an NFD normaliser turns Hangul syllables into jamo before the vocabulary sees them
        hangul = sorted({j for w in hangul for j in _jamo(w.removeprefix("##"))})
        subwords = [w for w in subwords if w.isascii()] + ["##" + j for j in hangul]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + words + subwords + hangul))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=uncased, strip_accents=uncased)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]",
                                            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def sentencepiece() -> PreTrainedTokenizerFast:
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁fever", "▁fe", "ver", "로", "▁r", "/", "o", "▁3",
              "일", "전부터", "▁T", "-", "tube", "▁Abd", ".", "▁SpO", "2", "▁cough", "(", "+", ")", "와"]
    tok = Tokenizer(models.Unigram([(p, -1.0 if len(p) > 1 else -3.0) for p in pieces], unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")
