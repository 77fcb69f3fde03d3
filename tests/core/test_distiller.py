"""The trained path is the tested path: the distiller's KD terms equal the public loss functions on the
same batch (hidden_kd_loss on full hidden states; attention_grids + attention_kd_from_grids on full attentions)."""
import pytest
import torch

from dsgkd.config import RunConfig
from dsgkd.core.distiller import Distiller
from dsgkd.core.features import collate
from dsgkd.core.layer_maps import Match, attention_pairs
from dsgkd.core.losses.attention import attention_kd_from_grids
from dsgkd.core.losses.kd import hidden_kd_loss
from dsgkd.core.losses.pooling import attention_grids
from dsgkd.core.teacher.signal import LiveTeacher
from dsgkd.models.load import encoder_width
from dsgkd.pipeline.prepare import prepare


@pytest.mark.parametrize("hidden_loss", ["mse", "cosine", "relational"])
def test_distiller_terms_are_the_public_losses(notes_csv, hidden_loss):
    cfg = RunConfig().with_overrides({
        "data.path": str(notes_csv), "data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.max_length": 64,
        "teacher.ref": "kmbert-tiny", "student.ref": "kobert-tiny", "distill.layer_map": "uniform",
        "distill.alpha": 0.6, "distill.beta": 0.2, "distill.hidden_loss": hidden_loss})
    p = prepare(cfg)
    torch.manual_seed(0)
    model = Distiller(p.student, cfg, p.layer_pairs, encoder_width(p.teacher_config)).eval()
    assert model.matches[0] == Match(0, 0, "hidden", hidden_loss, 0.6)
    assert [m.feature for m in model.matches].count("attention") == len([x for x in p.layer_pairs if min(x) > 0])
    batch = collate(p.train_examples[:8], p.student_tok.pad_token_id, p.teacher_tok.pad_token_id)
    assert batch["term_mask"].any()
    signal = LiveTeacher(p.teacher, p.teacher_layers, p.teacher_attn_layers, logits=False)
    with torch.no_grad():
        loss, parts, _ = model(batch, signal(batch, "train"))
        t = p.teacher(input_ids=batch["t_ids"], attention_mask=batch["t_mask"], output_hidden_states=True,
                      output_attentions=True)
        s = p.student(input_ids=batch["s_ids"], attention_mask=batch["s_mask"], output_hidden_states=True,
                      output_attentions=True)
        hidden = hidden_kd_loss(torch.stack(t.hidden_states), torch.stack(s.hidden_states), batch["t_spans"],
                                batch["s_spans"], batch["term_mask"], p.layer_pairs, model.proj, hidden_loss)
        t_states, s_states = zip(*attention_pairs(p.layer_pairs))  # the pairs with an attention on both sides
        attention = attention_kd_from_grids(attention_grids(torch.stack(t.attentions), batch["t_spans"], t_states),
                                            attention_grids(torch.stack(s.attentions), batch["s_spans"], s_states),
                                            batch["term_mask"])
    torch.testing.assert_close(parts["hidden"], hidden, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts["attention"], attention, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(loss, parts["ce"] + 0.6 * hidden + 0.2 * attention, rtol=1e-5, atol=1e-6)
    assert (model.proj is None) == (hidden_loss == "relational")
