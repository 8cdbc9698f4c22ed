"""Worker of the real 2-process DDP test; kept import-light because every spawned process imports it."""

from __future__ import annotations

import torch
import torch.distributed as dist

from lightning_unlearn.metrics import LossMIAAUC, MIAEfficacy


def run(rank: int, world_size: int, init_file: str, out_dir: str, shards: list[dict], mia_kwargs: dict) -> None:
    """Update the metrics with this rank's shard, ``compute`` (which all-gathers), save the results."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        shard = shards[rank]
        mia = MIAEfficacy(**mia_kwargs)
        for split in ("retain", "test", "forget"):
            for probs, targets in zip(shard[split][0].split(37), shard[split][1].split(37), strict=True):
                mia.update(probs, targets, split=split)
        auc = LossMIAAUC()
        for losses, is_member in shard["losses"]:
            auc.update(losses, is_member)
        torch.save({"mia": mia.compute(), "auc": auc.compute()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
