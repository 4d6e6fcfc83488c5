"""Independent numpy reference of DeepSeek's eplb.py (github.com/deepseek-ai/EPLB), float32 semantics.

Written from the algorithm's description, in the array style of the original, to cross-check the
TypeScript port (src/eplb/balancers/deepseek.ts). Same fixed choices where torch is not deterministic:
equal weights sort lower index first; each group sums left to right in float32.

It also records every tie met on the way (equal sort keys between different experts, equal pack
weights at a min, equal load/count maxima), so that the fixture generator can keep only inputs whose
result cannot depend on how a tie is broken.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


class TieLog:
    """Records decisions that an accidental tie could have swung. Not recorded: ties between packs that
    received the very same sequence of weights (empty packs, or one replica each of the same expert):
    their float32 sums are equal by construction, and Python's min then takes the lowest index, the
    original's own rule, whatever the arithmetic details."""

    def __init__(self) -> None:
        self.ties: list[str] = []

    def add(self, what: str) -> None:
        self.ties.append(what)


def balanced_packing(weight: np.ndarray, num_packs: int, labels: np.ndarray | None, log: TieLog):
    """weight: float32 [rows, n]. labels: [rows, n] ids; equal sort keys with equal labels are harmless."""
    rows, n = weight.shape
    assert n % num_packs == 0
    per_pack = n // num_packs
    if per_pack == 1:
        return np.tile(np.arange(n, dtype=np.int64), (rows, 1)), np.zeros((rows, n), dtype=np.int64)
    pack_index = np.full((rows, n), -1, dtype=np.int64)
    rank_in_pack = np.full((rows, n), -1, dtype=np.int64)
    for r in range(rows):
        w = weight[r]
        order = np.argsort(-w, kind="stable")  # descending, lower index first among equals
        for a, b in zip(order[:-1], order[1:]):
            if w[a] == w[b] and (labels is None or labels[r, a] != labels[r, b]):
                log.add(f"sort tie row {r}: items {a},{b}")
        pack_w = np.zeros(num_packs, dtype=F32)
        pack_n = np.zeros(num_packs, dtype=np.int64)
        pack_seq: list[tuple] = [() for _ in range(num_packs)]
        for item in order:
            open_packs = [p for p in range(num_packs) if pack_n[p] < per_pack]
            best = min(open_packs, key=lambda p: pack_w[p])
            tied = [p for p in open_packs if pack_w[p] == pack_w[best]]
            if len(tied) > 1 and any(pack_seq[p] != pack_seq[tied[0]] for p in tied):
                log.add(f"pack tie row {r}: packs {tied}")
            pack_index[r, item] = best
            rank_in_pack[r, item] = pack_n[best]
            pack_w[best] = F32(pack_w[best] + w[item])
            pack_n[best] += 1
            pack_seq[best] += (float(w[item]),)
    return pack_index, rank_in_pack


def replicate_experts(weight: np.ndarray, num_phy: int, log: TieLog):
    """weight: float32 [rows, num_log]. Extra slot i goes to argmax(weight / count), first max on ties."""
    rows, num_log = weight.shape
    assert num_phy >= num_log
    phy2log = np.tile(np.arange(num_phy, dtype=np.int64), (rows, 1))
    rank = np.zeros((rows, num_phy), dtype=np.int64)
    logcnt = np.ones((rows, num_log), dtype=np.int64)
    all_rows = np.arange(rows)
    for i in range(num_log, num_phy):
        ratio = weight / logcnt.astype(F32)  # float32 / float32: one correctly rounded division
        best = ratio.argmax(axis=-1)
        n_max = (ratio == ratio[all_rows, best][:, None]).sum(axis=-1)
        for r in np.nonzero(n_max > 1)[0]:
            log.add(f"replicate tie row {r}, slot {i}")
        phy2log[:, i] = best
        rank[:, i] = logcnt[all_rows, best]
        logcnt[all_rows, best] += 1
    return phy2log, rank, logcnt


def _inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.broadcast_to(np.arange(perm.shape[1]), perm.shape), axis=1)
    return inv


def rebalance_hierarchical(weight, num_phy, num_groups, num_nodes, num_gpus, log: TieLog):
    layers, num_log = weight.shape
    group_size = num_log // num_groups
    groups_per_node = num_groups // num_nodes
    per_gpu = num_phy // num_gpus
    log_per_node = num_log // num_nodes

    # Step 1: groups onto nodes, by float32 group sums taken left to right.
    grouped = weight.reshape(layers, num_groups, group_size)
    group_w = np.zeros((layers, num_groups), dtype=F32)
    for k in range(group_size):
        group_w = group_w + grouped[:, :, k]
    g_pack, g_rank = balanced_packing(group_w, num_nodes, None, log)
    log2mlog = (
        ((g_pack * groups_per_node + g_rank) * group_size)[:, :, None] + np.arange(group_size)
    ).reshape(layers, num_log)
    mlog2log = _inverse(log2mlog)

    # Step 2: replicas within each node.
    w_mlog = np.take_along_axis(weight, mlog2log, axis=-1).reshape(-1, log_per_node)
    phy2mlog, phyrank, mlogcnt = replicate_experts(w_mlog, num_phy // num_nodes, log)

    # Step 3: a node's replicas onto its GPUs.
    w_phy = np.take_along_axis(w_mlog / mlogcnt.astype(F32), phy2mlog, axis=-1)
    pack, rank = balanced_packing(w_phy, num_gpus // num_nodes, phy2mlog, log)
    pphy2phy = _inverse(pack * per_gpu + rank)

    # Step 4: back to global ids.
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=-1)
    pphy2mlog = (
        pphy2mlog.reshape(layers, num_nodes, -1) + (np.arange(num_nodes) * log_per_node)[None, :, None]
    ).reshape(layers, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, axis=-1)
    pphyrank = np.take_along_axis(phyrank, pphy2phy, axis=-1).reshape(layers, -1)
    logcnt = np.take_along_axis(mlogcnt.reshape(layers, -1), log2mlog, axis=-1)
    return pphy2log, pphyrank, logcnt


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus, log: TieLog | None = None):
    """Returns (phy2log [L,R], log2phy [L,E,X], logcnt [L,E]) like eplb.rebalance_experts."""
    log = log or TieLog()
    weight = np.asarray(weight).astype(F32)
    layers, num_log = weight.shape
    if num_groups % num_nodes == 0:
        phy2log, phyrank, logcnt = rebalance_hierarchical(
            weight, num_replicas, num_groups, num_nodes, num_gpus, log
        )
    else:
        phy2log, phyrank, logcnt = rebalance_hierarchical(weight, num_replicas, 1, 1, num_gpus, log)
    x = int(logcnt.max())
    log2phy = np.full((layers, num_log * x), -1, dtype=np.int64)
    np.put_along_axis(
        log2phy, phy2log * x + phyrank, np.broadcast_to(np.arange(num_replicas), phy2log.shape), axis=1
    )
    return phy2log, log2phy.reshape(layers, num_log, x), logcnt
