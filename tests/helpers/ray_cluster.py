"""A local Ray instance for the tests of the Ray executors (not a test module).

``local_ray()`` is the body of a module-scoped fixture: it starts Ray on this machine's loopback with
two CPUs and no dashboard, yields the ``ray`` module and shuts Ray down after the module. Without Ray
installed it skips with the install hint, except under CI, where Ray is a dev dependency and its
absence fails the run.
"""
from __future__ import annotations

import os

import pytest


def require_ray():
    """The ``ray`` module; skip (outside CI) or fail (under CI) when it is not installed."""
    try:
        import ray
    except ImportError:
        reason = "Ray is not installed: pip install 'ser-adapt[ray]' (the dev extra includes it)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI must test the Ray executors: {reason}")
        pytest.skip(reason)
    return ray


def local_ray():
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
