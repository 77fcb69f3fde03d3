"""Logit KD (Hinton et al.): needs a teacher with a task head, i.e. one fine-tuned on the task."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def logit_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher_T ‖ student_T) · T², averaged over the batch."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.to(student_logits.dtype) / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * (t * t)
