"""The trained path is the tested path: the distiller's KD terms equal the public loss functions on the
same batch (hidden_kd_loss on full hidden states; attention_grids + attention_kd_from_grids on full attentions)."""
import pytest
import torch

from dsgkd.config import RunConfig
from dsgkd.core.distiller import Distiller
from dsgkd.core.features import collate
from dsgkd.core.layer_maps import attention_pairs
from dsgkd.core.losses.attention import attention_kd_from_grids
from dsgkd.core.losses.kd import hidden_kd_loss
from dsgkd.core.losses.pooling import attention_grids
from dsgkd.core.teacher.signal import LiveTeacher
from dsgkd.models.load import encoder_width
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run


@pytest.mark.parametrize("hidden_loss", ["mse", "cosine", "relational"])
def test_distiller_terms_are_the_public_losses(notes_csv, hidden_loss):
    cfg = RunConfig().with_overrides({
        "data.path": str(notes_csv), "data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.max_length": 64,
        "teacher.ref": "kmbert-tiny", "student.ref": "kobert-tiny", "distill.layer_map": "uniform",
        "distill.alpha": 0.6, "distill.beta": 0.2, "distill.hidden_loss": hidden_loss})
    p = prepare(resolve_run(cfg))
    torch.manual_seed(0)
    model = Distiller(p.student, cfg.distill, p.layer_pairs, encoder_width(p.teacher_config)).eval()
    assert [(term.name, weight, pairs) for term, weight, pairs in model.terms] == [
        ("hidden", 0.6, p.layer_pairs), ("attention", 0.2, [x for x in p.layer_pairs if min(x) > 0])]
    proj = model.term_modules["hidden"] if "hidden" in model.term_modules else None
    batch = collate(p.train_examples[:8], p.student_tok.pad_token_id, p.teacher_tok.pad_token_id)
    assert batch["term_mask"].any()
    teacher = p.teachers["pretrained"]
    signal = LiveTeacher(teacher, p.teacher_layers(), p.teacher_attn_layers(), logits=False)
    with torch.no_grad():
        loss, parts, _ = model(batch, {"pretrained": signal(batch, "train")})
        t = teacher(input_ids=batch["t_ids"], attention_mask=batch["t_mask"], output_hidden_states=True,
                      output_attentions=True)
        s = p.student(input_ids=batch["s_ids"], attention_mask=batch["s_mask"], output_hidden_states=True,
                      output_attentions=True)
        hidden = hidden_kd_loss(torch.stack(t.hidden_states), torch.stack(s.hidden_states), batch["t_spans"],
                                batch["s_spans"], batch["term_mask"], p.layer_pairs, proj, hidden_loss)
        t_states, s_states = zip(*attention_pairs(p.layer_pairs))  # the pairs with an attention on both sides
        attention = attention_kd_from_grids(attention_grids(torch.stack(t.attentions), batch["t_spans"], t_states),
                                            attention_grids(torch.stack(s.attentions), batch["s_spans"], s_states),
                                            batch["term_mask"])
    torch.testing.assert_close(parts["hidden"], hidden, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts["attention"], attention, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(loss, parts["ce"] + 0.6 * hidden + 0.2 * attention, rtol=1e-5, atol=1e-6)
    assert (proj is None) == (hidden_loss == "relational")


def test_logit_kd_reads_the_teacher_logits_and_only_what_the_terms_need(notes_csv, tmp_path):
    """gamma alone: the student is asked for no hidden states or attentions, the teacher signal carries logits
    and no pooled layers, and the term is `logit_kd_loss` at the configured temperature."""
    from dsgkd.core.engine import make_teacher_signal
    from dsgkd.core.losses.logit import logit_kd_loss

    cfg = RunConfig().with_overrides({
        "data.path": str(notes_csv), "data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.max_length": 64,
        "teacher.ref": "kmbert-tiny", "student.ref": "kobert-tiny", "distill.layer_map": "uniform",
        "distill.alpha": 0.0, "distill.beta": 0.0, "distill.temperature": 3.0})
    # the pretrained teacher with a fresh classifier head stands in for a fine-tuned copy (no fine-tuning here)
    cfg = cfg.model_copy(update={"distill": cfg.distill.model_copy(update={"gamma": 0.7})})
    p = prepare(resolve_run(cfg), teacher_dir="kmbert-tiny")
    assert set(p.teachers) == {"finetuned"}  # the pretrained teacher is not loaded: no term reads it
    model = Distiller(p.student, cfg.distill, p.layer_pairs, encoder_width(p.teacher_config)).eval()
    assert [term.name for term, _, _ in model.terms] == ["logit"] and not model.term_modules
    assert p.sources == ["finetuned"] and p.teacher_layers() == [] and p.teacher_attn_layers() == []
    batch = collate(p.train_examples[:8], p.student_tok.pad_token_id, p.teacher_tok.pad_token_id)
    out = make_teacher_signal(p, None, torch.device("cpu"))(batch, "train")["finetuned"]
    assert out.pooled is None and out.grid is None and out.logits is not None
    seen = {}
    forward = p.student.forward
    p.student.forward = lambda **kw: seen.update(kw) or forward(**kw)
    with torch.no_grad():
        loss, parts, logits = model(batch, {"finetuned": out})
    assert not seen["output_hidden_states"] and not seen["output_attentions"]
    torch.testing.assert_close(parts["logit"], logit_kd_loss(logits, out.logits, 3.0))
    torch.testing.assert_close(loss, parts["ce"] + 0.7 * parts["logit"])


def test_each_term_reads_the_teacher_its_config_names(notes_csv):
    """hidden_teacher / attention_teacher route each term to its teacher: the signal holds, per teacher, only what
    the terms reading it need, and changing one teacher's signal moves only the terms that read it."""
    from dsgkd.core.engine import make_teacher_signal
    from dsgkd.errors import UserError

    cfg = RunConfig().with_overrides({
        "data.path": str(notes_csv), "data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.max_length": 64,
        "teacher.ref": "kmbert-tiny", "student.ref": "kobert-tiny", "distill.layer_map": "uniform",
        "teacher.finetune": True, "distill.hidden_teacher": "finetuned", "distill.attention_teacher": "pretrained"})
    p = prepare(resolve_run(cfg), teacher_dir="kmbert-tiny")  # the stand-in in place of a fine-tuned copy
    pairs = p.layer_pairs
    assert p.sources == ["pretrained", "finetuned"] and set(p.teachers) == {"pretrained", "finetuned"}
    assert p.teacher_layers("finetuned") == sorted({t for t, _ in pairs}) and p.teacher_layers("pretrained") == []
    assert p.teacher_attn_layers("pretrained") == sorted({t for t, s in pairs if min(t, s) > 0})
    assert p.teacher_attn_layers("finetuned") == []
    model = Distiller(p.student, cfg.distill, pairs, encoder_width(p.teacher_config)).eval()
    assert model.sources == ["finetuned", "pretrained"]  # hidden, attention
    batch = collate(p.train_examples[:8], p.student_tok.pad_token_id, p.teacher_tok.pad_token_id)
    out = make_teacher_signal(p, None, torch.device("cpu"))(batch, "train")
    assert out["finetuned"].grid is None and out["pretrained"].pooled is None
    with torch.no_grad():
        _, base, _ = model(batch, out)
        out["finetuned"].pooled = torch.zeros_like(out["finetuned"].pooled)
        _, moved, _ = model(batch, out)
    assert moved["attention"] == base["attention"] and moved["hidden"] != base["hidden"]
    with pytest.raises(UserError, match="give a cache per teacher"):
        make_teacher_signal(p, "one-cache-dir", torch.device("cpu"))
