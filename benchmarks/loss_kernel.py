"""Forward+backward time of the vectorised `hidden_kd_loss` vs the paper code's formulation, as it is.

The paper's code (JoSangYeon/DSG-KD, utils.py `MLKD_Loss.forward`), restated: for every sample and every
code-switched word, one slice of the word's tokens across *all* layers (`t_hidden_states[:, b, s:e, :]`),
averaged over the tokens (`AdaptiveAvgPool2d((1, None))`), the [layers, D] vectors of all words
concatenated, then one MSE. Layers are mapped index to index, as there. Both are checked equal in value and
gradient before timing. Prints JSON.

    python benchmarks/loss_kernel.py [--layers 13 --batch 16 --tokens 128 --dim 256 --words 32 --repeats 5]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

from dsgkd.core.losses.kd import hidden_kd_loss


def paper_loop(t_states, s_states, t_spans, s_spans, mask, pairs):
    """One slice across the mapped layers per (sample, word), mean over its tokens, concatenate, one MSE."""
    t_layers, s_layers = [t for t, _ in pairs], [s for _, s in pairs]
    t_states, s_states = t_states[t_layers], s_states[s_layers]
    pool, width = torch.nn.AdaptiveAvgPool2d((1, None)), t_states.shape[-1]
    t_vecs, s_vecs = [], []
    for b in range(mask.shape[0]):
        for w in range(mask.shape[1]):
            if mask[b, w]:
                ts, te = t_spans[b, w].tolist()
                ss, se = s_spans[b, w].tolist()
                t_vecs.append(pool(t_states[:, b, ts:te, :]).view(-1, width))
                s_vecs.append(pool(s_states[:, b, ss:se, :]).view(-1, width))
    return F.mse_loss(torch.cat(s_vecs), torch.cat(t_vecs))


def make_inputs(L, B, T, D, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    t_states = torch.randn(L, B, T, D, generator=g)
    s_states = torch.randn(L, B, T, D, generator=g, requires_grad=True)
    starts = torch.randint(1, T - 4, (B, W), generator=g)
    lens = torch.randint(1, 4, (B, W), generator=g)
    spans = torch.stack([starts, starts + lens], -1)
    mask = torch.rand(B, W, generator=g) < 0.9
    return t_states, s_states, spans, mask


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--words", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    t_states, s_states, spans, mask = make_inputs(a.layers, a.batch, a.tokens, a.dim, a.words)
    pairs = [(i, i) for i in range(a.layers)]

    def fast():
        s_states.grad = None
        loss = hidden_kd_loss(t_states, s_states, spans, spans, mask, pairs)
        loss.backward()
        return loss

    def slow():
        s_states.grad = None
        loss = paper_loop(t_states, s_states, spans, spans, mask, pairs)
        loss.backward()
        return loss

    v_fast, g_fast = fast().item(), s_states.grad.clone()
    v_slow, g_slow = slow().item(), s_states.grad.clone()
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-4, atol=1e-7)
    t_fast, t_slow = timed(fast, a.repeats), timed(slow, max(1, a.repeats // 2))
    print(json.dumps({
        "benchmark": "loss_kernel", "shape": {"L": a.layers, "B": a.batch, "T": a.tokens, "D": a.dim, "W": a.words},
        "valid_terms": int(mask.sum()), "value_vectorised": v_fast, "value_paper_loop": v_slow,
        "values_equal": abs(v_fast - v_slow) <= 1e-5 * abs(v_slow), "gradients_equal": True,
        "vectorised_ms": round(t_fast * 1e3, 2), "paper_loop_ms": round(t_slow * 1e3, 2),
        "speedup": round(t_slow / t_fast, 1), "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
