"""Writes test/fixtures/deepseek-random.json: random inputs and what eplb_reference.py returns for them.

Inputs are tie-free: distinct float32 loads, and any input whose run meets a tie (see TieLog) is
redrawn, so the expected output does not depend on how a tie is broken. One extra case of all-zero
layers is kept with its ties on purpose: it pins the lower-index-first rule that the port shares.

Usage: python3 test/reference/generate_fixtures.py [--seed 1] [--out test/fixtures/deepseek-random.json]
then `npx biome format --write test/fixtures/deepseek-random.json` (the committed file is biome-formatted).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eplb_reference import TieLog, rebalance_experts  # noqa: E402

README_WEIGHTS = [
    [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
    [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
]
README_PHY2LOG = [
    [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
    [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
]

# (layers, experts, replicas, groups, nodes, gpus, why)
SHAPES = [
    (3, 12, 16, 4, 2, 8, "README shape, hierarchical"),
    (3, 16, 24, 4, 2, 4, "hierarchical, 2 groups per node, 3 slots per GPU"),
    (3, 32, 48, 8, 4, 8, "hierarchical, 2 groups per node"),
    (2, 32, 40, 4, 4, 8, "groups == nodes: step 1 packing is the identity"),
    (2, 24, 32, 6, 2, 32, "one slot per GPU: step 3 packing is the identity"),
    (2, 32, 32, 8, 2, 8, "R == E: no replication"),
    (2, 16, 24, 4, 1, 4, "one node, several groups: groups sorted by load"),
    (2, 20, 30, 5, 2, 6, "global policy: groups % nodes != 0"),
    (2, 30, 40, 3, 2, 8, "global policy, 5 slots per GPU"),
    (2, 18, 18, 3, 2, 6, "global policy, R == E"),
    (2, 64, 96, 8, 2, 8, "hierarchical, many replicas"),
    (2, 256, 288, 8, 4, 32, "DeepSeek-V3 deployment"),
    (2, 256, 288, 8, 3, 24, "DeepSeek-V3 experts, 3 nodes: global policy"),
]


def draw_weights(rng: np.random.Generator, layers: int, experts: int, integer: bool) -> np.ndarray:
    """Distinct float32 loads per layer; integers like real token counts, or arbitrary float32 values."""
    out = np.empty((layers, experts), dtype=np.float32)
    for layer in range(layers):
        if integer:
            # heavy-tailed, like real expert loads, kept small enough that float32 sums stay exact
            vals = np.unique(np.floor(rng.lognormal(8.0, 1.2, size=experts * 3)).astype(np.int64) + 1)
            vals = vals[vals < 2**24 // experts]
            row = rng.permutation(vals)[:experts].astype(np.float32)
        else:
            row = np.unique(rng.uniform(0.0, 1000.0, size=experts * 2).astype(np.float32))
            row = rng.permutation(row)[:experts]
        assert row.size == experts and np.unique(row).size == experts
        out[layer] = row
    return out


def case_json(name, shape, weights, tie_free):
    layers, experts, replicas, groups, nodes, gpus = shape
    phy2log, log2phy, logcnt = rebalance_experts(weights, replicas, groups, nodes, gpus)
    return {
        "name": name,
        "tieFree": tie_free,
        "shape": dict(layers=layers, experts=experts, replicas=replicas, groups=groups, nodes=nodes, gpus=gpus),
        "weights": [float(v) for v in weights.reshape(-1)],
        "phy2log": phy2log.reshape(-1).tolist(),
        "logcnt": logcnt.reshape(-1).tolist(),
        "maxReplicas": int(log2phy.shape[2]),
        "log2phy": log2phy.reshape(-1).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="test/fixtures/deepseek-random.json")
    args = parser.parse_args()

    got, _, _ = rebalance_experts(np.array(README_WEIGHTS), 16, 4, 2, 8)
    assert got.tolist() == README_PHY2LOG, f"reference does not reproduce the README example: {got.tolist()}"

    rng = np.random.default_rng(args.seed)
    cases = []
    for *shape, why in SHAPES:
        for integer in (True, False):
            for attempt in range(200):
                weights = draw_weights(rng, shape[0], shape[1], integer)
                log = TieLog()
                rebalance_experts(weights, shape[2], shape[3], shape[4], shape[5], log)
                if not log.ties:
                    break
            else:
                raise SystemExit(f"no tie-free input found for {shape} ({why})")
            kind = "integer" if integer else "float"
            cases.append(case_json(f"{why} [{kind} loads, draw {attempt + 1}]", shape, weights, True))

    zero_shape = (3, 32, 48, 8, 4, 8)
    zero = draw_weights(rng, 3, 32, True)
    zero[0] = 0
    zero[2] = 0
    cases.append(case_json("all-zero layers 0 and 2 (ties broken lower index first)", zero_shape, zero, False))

    doc = {
        "about": "Generated by test/reference/generate_fixtures.py from eplb_reference.py (numpy, float32); "
        "do not edit by hand.",
        "seed": args.seed,
        "cases": cases,
    }
    with open(args.out + ".tmp", "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {len(cases)} cases to {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
