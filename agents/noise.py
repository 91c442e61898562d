"""Counter-based random numbers for many independent rows in one batched draw.

Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) written with
int64 tensor ops: row b's numbers are a pure function of (its key, its call counter, the element
index), so all rows of a planner call draw in one pass of a fixed number of ops (flat in the
number of rows), and a row gets the same numbers whichever batch it is planned in.

Every intermediate stays below 2^63, so the int64 arithmetic is exact on any device (no reliance
on signed overflow wrapping).
"""

from __future__ import annotations

import math

import torch

_MASK32 = 0xFFFFFFFF
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # round multipliers
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # key schedule increments (golden ratio, sqrt(3) - 1)


def row_key(seed: int, row: int) -> tuple[int, int]:
    """Two 32-bit key words naming the stream of (seed, row)."""
    mixed = (seed * 1_000_003 + row * 7919 + 12345) % (2**63 - 1)
    return mixed & _MASK32, (mixed >> 32) & _MASK32


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of a * m for a in [0, 2^32) and a constant m < 2^32, exactly:
    m is split into 16-bit halves so that no partial product reaches 2^63."""
    p = a * (m >> 16)  # < 2^48
    s = (p & 0xFFFF).bitwise_left_shift_(16).add_(a * (m & 0xFFFF))  # < 2^49
    return p.bitwise_right_shift_(16).add_(s >> 32), s.bitwise_and_(_MASK32)


def philox4x32(
    counter: tuple[torch.Tensor, ...], key: tuple[torch.Tensor, torch.Tensor], rounds: int = 10
) -> tuple[torch.Tensor, ...]:
    """Philox4x32-`rounds`: four counter words and two key words (int64 tensors holding 32-bit
    values, broadcastable to one shape) -> four 32-bit output words of that shape."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(rounds):
        hi0, lo0 = _mulhilo(c0, _PHILOX_M[0])
        hi1, lo1 = _mulhilo(c2, _PHILOX_M[1])
        c0, c1, c2, c3 = (hi1 ^ c1).bitwise_xor_(k0), lo1, (hi0 ^ c3).bitwise_xor_(k1), lo0
        k0, k1 = (k0 + _PHILOX_W[0]) & _MASK32, (k1 + _PHILOX_W[1]) & _MASK32
    return c0, c1, c2, c3


def counter_draw(
    keys: torch.Tensor, counters: torch.Tensor, num_normal: int, num_uniform: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batched draw for B independent rows.

    keys [B, 2] int64 (row_key words), counters [B] int64 (< 2^32, e.g. the row's plan calls so far)
    -> standard normal [B, num_normal] float32 and uniform in (0, 1) [B, num_uniform] float32.
    Row b's values depend only on (keys[b], counters[b]) and the two sizes."""
    B = keys.shape[0]
    n_normal = num_normal + (num_normal & 1)  # Box-Muller makes normals in pairs
    words = n_normal + num_uniform
    blocks = math.ceil(words / 4)
    device = keys.device
    j = torch.arange(blocks, device=device, dtype=torch.int64).expand(B, blocks)
    zero = torch.zeros(B, 1, dtype=torch.int64, device=device)
    words4 = philox4x32((j, (counters.view(B, 1) & _MASK32).expand(B, blocks), zero, zero), (keys[:, :1], keys[:, 1:]))
    bits = torch.cat(torch.broadcast_tensors(*words4), dim=1)[:, :words]  # [B, 4 * blocks] -> [B, words]
    # 24 random bits per float, centred in their bin: u in [2^-25, 1 - 2^-25], never 0 or 1
    u = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
    u1, u2 = u[:, :n_normal].view(B, -1, 2).unbind(-1)
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = (2 * math.pi) * u2
    normal = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=-1).view(B, n_normal)
    return normal[:, :num_normal], u[:, n_normal:]
