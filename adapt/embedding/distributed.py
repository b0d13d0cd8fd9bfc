"""Embedding extraction over a Ray cluster: ``embed_layers(..., executor="ray")``.

The clips are cut into blocks of ``EmbedOptions.block`` clips, the local path's own unit of work,
and each block is one call on a pool of Ray actors (``ray.util.ActorPool``). Every actor loads the
backbone once and runs the local ``embed_layers`` on its blocks, so the batches, the cache keys and
the numbers are those of the local path; the driver only puts the blocks back in input order and
ticks the progress bar as blocks finish. Scheduling, retries and restarts are Ray's: an actor whose
process dies is restarted (``max_restarts``) and its unfinished call re-run (``max_task_retries``),
both set from ``EmbedOptions.max_retries``.

The cache: the workers read and write the same content-addressed ``EmbeddingCache`` folder as the
local path (the driver passes its resolved root, so every worker uses the same one). A clip already
cached is a hit inside its worker and is never sent through the backbone; on a multi-machine cluster
the folder must be shared (e.g. NFS mounted at the same path on every node). The hit / miss /
corrupt counters of the workers are added to the caller's ``EmbeddingCache`` object.

Connecting: when Ray is not initialized yet, ``connect()`` (called by ``embed_layers``) starts or
joins one with ``ray.init(address)`` (``address=None``: ``$RAY_ADDRESS``, else a local instance). Ray
is imported inside the functions only; without it installed, ``executor="ray"`` raises an
``ImportError`` with the install hint.

Example:
    >>> X = embed_layers("logmel", paths, executor="ray", workers=2, num_threads=1)   # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .cache import EmbeddingCache

if TYPE_CHECKING:  # pragma: no cover
    from . import EmbedOptions

__all__ = ["RAY_INSTALL_HINT", "import_ray", "connect", "embed_layers_ray"]

RAY_INSTALL_HINT = "pip install 'ser-adapt[ray]'"


def import_ray():
    """The ``ray`` module, or an ``ImportError`` that says which extra installs it."""
    try:
        import ray
    except ImportError:
        raise ImportError(f"the Ray executor needs Ray, which is not installed: {RAY_INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None, **init_options: Any):
    """Initialize Ray if it is not yet (``ray.init(address)``) and return the ``ray`` module.

    ``address``: a cluster address (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.1:6379"``) or
    ``None`` (``$RAY_ADDRESS``, else start a local instance on this machine's cores, without the
    dashboard). An already initialized Ray is used as it is.
    """
    ray = import_ray()
    if not ray.is_initialized():
        if address is None and not os.environ.get("RAY_ADDRESS"):
            init_options.setdefault("include_dashboard", False)
        ray.init(address=address, **init_options)
    return ray


class _EmbedWorker:
    """A Ray actor: one backbone, loaded once, embedding blocks of clips with the local path."""

    def __init__(self, backbone: Any, num_threads: int) -> None:
        import torch

        from . import resolve_backbone

        torch.set_num_threads(num_threads)
        self.bb = resolve_backbone(backbone)

    def spec(self):
        return self.bb.spec

    def embed(self, start: int, clips: Sequence[object], options: "EmbedOptions",
              cache_root: str | None) -> tuple[int, np.ndarray, tuple[int, int, int]]:
        from . import embed_layers

        store = EmbeddingCache(root=cache_root) if cache_root is not None else None
        out = embed_layers(self.bb, clips, options=replace(options, executor="local", progress=False,
                                                          cache=store if store is not None else False))
        counts = (store.hits, store.misses, store.corrupt) if store is not None else (0, 0, 0)
        return start, out, counts


def _workers(ray, requested: int | None, threads: int, n_blocks: int) -> int:
    if requested is not None:
        return max(1, min(requested, n_blocks))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(cpus // threads or 1, n_blocks))


def embed_layers_ray(backbone: Any, clips: Sequence[object], opts: "EmbedOptions",
                     store: EmbeddingCache | None) -> np.ndarray:
    """``embed_layers`` on Ray actors; ``(N, L, D')`` float32 in input order (see the module docstring).

    ``backbone``: a registry name or ``None`` (each actor builds it by name), or a ``Backbone``
    instance (shipped to the actors once through the object store).
    """
    ray = connect()
    from ray.util import ActorPool

    threads = opts.num_threads or 1
    n = len(clips)
    starts = list(range(0, n, opts.block))
    n_workers = _workers(ray, opts.workers, threads, max(len(starts), 1))
    gpus = 1 if opts.device is not None and str(opts.device).startswith("cuda") else 0
    Worker = ray.remote(_EmbedWorker).options(num_cpus=threads, num_gpus=gpus, max_restarts=opts.max_retries,
                                              max_task_retries=opts.max_retries)
    shipped = backbone if backbone is None or isinstance(backbone, str) else ray.put(backbone)
    actors = [Worker.remote(shipped, threads) for _ in range(n_workers)]
    try:
        spec = ray.get(actors[0].spec.remote())
        bar = None
        if opts.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"embed [{spec.name}] on {n_workers} Ray worker(s)", unit="clip")
        root = str(store.root) if store is not None else None
        local = replace(opts, executor="local", progress=False, cache=False)
        parts: dict[int, np.ndarray] = {}
        pool = ActorPool(actors)
        blocks = [(s, list(clips[s: s + opts.block])) for s in starts]
        for start, arr, (hits, misses, corrupt) in pool.map_unordered(
                lambda actor, blk: actor.embed.remote(blk[0], blk[1], local, root), blocks):
            parts[start] = arr
            if store is not None:
                store.hits += hits
                store.misses += misses
                store.corrupt += corrupt
            if bar is not None:
                bar.update(len(arr))
        if bar is not None:
            bar.close()
    finally:
        for actor in actors:
            ray.kill(actor)
    if not parts:
        from . import pooled_dim

        return np.zeros((0, spec.num_layers, pooled_dim(opts.pooling, spec.dim)), dtype=np.float32)
    return np.concatenate([parts[s] for s in starts], axis=0)
