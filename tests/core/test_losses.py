"""Vectorised losses against slow, obviously-correct loop references (value and gradient)."""
import math

import pytest
import torch
import torch.nn.functional as F

from dsgkd.core.layer_maps import attention_pairs
from dsgkd.core.losses.attention import attention_kd_from_grids, normalise_grid
from dsgkd.core.losses.kd import hidden_kd_loss, make_projection
from dsgkd.core.losses.logit import logit_kd_loss
from dsgkd.core.losses.pooling import attention_grid, attention_grids, pool_spans


def random_spans(g, B, W, T):
    spans = torch.zeros(B, W, 2, dtype=torch.long)
    mask = torch.zeros(B, W, dtype=torch.bool)
    for b in range(B):
        for w in range(W):
            if torch.rand((), generator=g) < 0.8:
                s = int(torch.randint(1, T - 3, (), generator=g))
                spans[b, w] = torch.tensor([s, s + int(torch.randint(1, 4, (), generator=g))])
                mask[b, w] = True
    return spans, mask


def slow_pool(states, spans):
    out = torch.zeros(*states.shape[:-2], spans.shape[1], states.shape[-1], dtype=states.dtype)
    B, W, _ = spans.shape
    for b in range(B):
        for w in range(W):
            s, e = spans[b, w].tolist()
            if e > s:
                out[..., b, w, :] = states[..., b, s:e, :].mean(-2)
    return out


def slow_hidden_kd(t_states, s_states, t_spans, s_spans, mask, pairs, proj):
    """The paper code's formulation: slice each word's tokens per layer, mean, concatenate, one MSE."""
    t_vecs, s_vecs = [], []
    for t_layer, s_layer in pairs:
        for b in range(mask.shape[0]):
            for w in range(mask.shape[1]):
                if mask[b, w]:
                    (ts, te), (ss, se) = t_spans[b, w].tolist(), s_spans[b, w].tolist()
                    t_vecs.append(t_states[t_layer, b, ts:te].mean(0))
                    s_vec = s_states[s_layer, b, ss:se].mean(0)
                    s_vecs.append(proj(s_vec) if proj is not None else s_vec)
    return F.mse_loss(torch.stack(s_vecs), torch.stack(t_vecs))


def test_pool_spans_matches_loop_and_zeroes_empty_spans():
    g = torch.Generator().manual_seed(0)
    states = torch.randn(3, 4, 20, 8, generator=g)
    spans, mask = random_spans(g, 4, 6, 20)
    pooled = pool_spans(states, spans)
    assert pooled.shape == (3, 4, 6, 8)
    torch.testing.assert_close(pooled, slow_pool(states, spans))
    assert (pooled[:, ~mask] == 0).all()


def test_pool_spans_gradient_matches_loop_with_one_token_empty_spans_and_a_note_without_terms():
    g = torch.Generator().manual_seed(5)
    states = torch.randn(2, 3, 12, 4, generator=g, requires_grad=True)
    spans = torch.tensor([[[2, 3], [4, 7], [0, 0]],     # one token, three tokens, empty
                          [[0, 0], [0, 0], [0, 0]],     # a note with no terms
                          [[1, 2], [5, 6], [6, 11]]])
    weights = torch.randn(2, 3, 3, 4, generator=g)
    (fast,) = torch.autograd.grad((pool_spans(states, spans) * weights).sum(), states)
    (slow,) = torch.autograd.grad((slow_pool(states, spans) * weights).sum(), states)
    torch.testing.assert_close(fast, slow)
    assert (fast[:, 1] == 0).all()


@pytest.mark.parametrize("widths", [(16, 16), (16, 8)])
def test_hidden_kd_equals_per_word_loop_in_value_and_gradient(widths):
    g = torch.Generator().manual_seed(1)
    Dt, Ds = widths
    t_states = torch.randn(5, 3, 24, Dt, generator=g)
    s_states = torch.randn(3, 3, 18, Ds, generator=g, requires_grad=True)
    t_spans, t_ok = random_spans(g, 3, 7, 18)
    s_spans, s_ok = random_spans(g, 3, 7, 18)
    mask = t_ok & s_ok  # a term is distilled only where both sides kept it
    pairs = [(0, 0), (2, 1), (4, 2)]
    torch.manual_seed(0)
    proj = make_projection(Ds, Dt)
    assert (proj is None) == (Ds == Dt)

    fast = hidden_kd_loss(t_states, s_states, t_spans, s_spans, mask, pairs, proj)
    (g_fast,) = torch.autograd.grad(fast, s_states)
    slow = slow_hidden_kd(t_states, s_states, t_spans, s_spans, mask, pairs, proj)
    (g_slow,) = torch.autograd.grad(slow, s_states)
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(g_fast, g_slow)


def test_hidden_kd_cosine_and_no_valid_terms():
    g = torch.Generator().manual_seed(2)
    t = torch.randn(2, 2, 10, 4, generator=g)
    spans, mask = random_spans(g, 2, 3, 10)
    assert hidden_kd_loss(t, t, spans, spans, mask, [(0, 0), (1, 1)], kind="cosine").abs() < 1e-6
    none = torch.zeros_like(mask)
    s = t.clone().requires_grad_(True)
    loss = hidden_kd_loss(t, s, spans, spans, none, [(0, 0)])
    assert loss.item() == 0.0
    loss.backward()  # stays differentiable with nothing to distil


def test_logit_kd_is_kl_times_t_squared_by_hand():
    s = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    T = 2.0
    expected = 0.0
    for row_s, row_t in zip(s.tolist(), t.tolist()):
        zs = [math.exp(x / T) for x in row_s]
        zt = [math.exp(x / T) for x in row_t]
        ps = [z / sum(zs) for z in zs]
        pt = [z / sum(zt) for z in zt]
        expected += sum(a * math.log(a / b) for a, b in zip(pt, ps))
    expected = expected / 2 * T * T
    assert logit_kd_loss(s, t, T).item() == pytest.approx(expected, rel=1e-5)
    assert logit_kd_loss(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_attention_grid_matches_loop():
    g = torch.Generator().manual_seed(3)
    attn = torch.softmax(torch.randn(2, 3, 2, 12, 12, generator=g), -1)  # [L, B, H, T, T]
    spans, mask = random_spans(g, 3, 4, 12)
    grid = attention_grid(attn, spans)
    ref = torch.zeros_like(grid)
    for b in range(3):
        for i in range(4):
            for j in range(4):
                (qs, qe), (ks, ke) = spans[b, i].tolist(), spans[b, j].tolist()
                if qe > qs and ke > ks:
                    ref[:, b, :, i, j] = attn[:, b, :, qs:qe, ks:ke].sum(-1).mean(-1)
    torch.testing.assert_close(grid, ref)
    norm = normalise_grid(grid[0], mask)
    rows = norm.sum(-1)  # every valid query term's row sums to one over the valid key terms
    torch.testing.assert_close(rows[mask[:, None, :].expand_as(rows)], torch.ones(int(mask.sum()) * 2))


def test_attention_kd_zero_when_student_is_teacher_and_positive_otherwise():
    g = torch.Generator().manual_seed(4)
    attn = torch.softmax(torch.randn(4, 2, 4, 16, 16, generator=g), -1)
    spans, mask = random_spans(g, 2, 5, 16)
    pairs = attention_pairs([(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)])  # the embeddings (state 0) have none
    assert pairs == [(1, 1), (2, 2), (3, 3), (4, 4)]
    grid = attention_grids(attn, spans, [t for t, _ in pairs])
    assert attention_kd_from_grids(grid, grid, mask).item() == pytest.approx(0.0, abs=1e-9)
    other = torch.softmax(torch.randn(4, 2, 4, 16, 16, generator=g), -1)
    assert attention_kd_from_grids(grid, attention_grids(other, spans, [s for _, s in pairs]), mask).item() > 0
    # different head counts: heads averaged on both sides
    s_grid = attention_grid(other[:, :, :2], spans)
    t_grid = attention_grid(attn, spans)
    assert attention_kd_from_grids(t_grid, s_grid, mask).item() > 0


def slow_relational(t_pooled, s_pooled, mask):
    """Loop reference: per layer pair, centred cosine-similarity matrices of the valid terms, off-diagonal MSE."""
    losses = []
    for p in range(t_pooled.shape[0]):
        t = torch.stack([t_pooled[p, b, w] for b, w in mask.nonzero().tolist()])
        s = torch.stack([s_pooled[p, b, w] for b, w in mask.nonzero().tolist()])
        t, s = t - t.mean(0), s - s.mean(0)
        n = len(t)
        for i in range(n):
            for j in range(n):
                if i != j:
                    losses.append((F.cosine_similarity(s[i], s[j], dim=0) - F.cosine_similarity(t[i], t[j], dim=0)) ** 2)
    return torch.stack(losses).mean()


def test_relational_kd_matches_loop_needs_no_projection_and_ignores_scale():
    from dsgkd.core.losses.hidden import hidden_kd_from_pooled

    g = torch.Generator().manual_seed(3)
    t = torch.randn(2, 3, 4, 8, generator=g)           # teacher width 8
    s = torch.randn(2, 3, 4, 5, generator=g, requires_grad=True)  # student width 5, no projection
    _, mask = random_spans(g, 3, 4, 10)
    fast = hidden_kd_from_pooled(t, s, mask, kind="relational")
    slow = slow_relational(t, s, mask)
    assert torch.allclose(fast, slow, atol=1e-6)
    g_fast, = torch.autograd.grad(fast, s)
    g_slow, = torch.autograd.grad(slow_relational(t, s, mask), s)
    assert torch.allclose(g_fast, g_slow, atol=1e-6)
    rotated = t @ torch.linalg.qr(torch.randn(8, 8, generator=g))[0]  # same geometry, other coordinates
    assert hidden_kd_from_pooled(t, rotated * 3.0, mask, kind="relational") < 1e-6
    assert hidden_kd_from_pooled(t, s, torch.zeros_like(mask), kind="relational").item() == 0.0
