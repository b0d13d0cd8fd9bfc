"""Request counters of the HTTP service, rendered in the Prometheus text format (``GET /metrics``).

Counts and latency sums are kept per method, route template and status: the template
(``/v1/users/{user_id}``), never the concrete path, so no user id reaches the metrics; a method
outside the standard ones is counted as ``OTHER``, so the number of series stays bounded whatever
clients send (methods x routes x statuses).

Example:
    >>> m = Metrics()
    >>> m.observe("GET", "/health", 200, 0.002)
    >>> 'ser_adapt_requests_total{method="GET",route="/health",status="200"} 1' in m.render()
    True
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict

__all__ = ["Metrics", "observe_requests", "route_of", "METHODS"]

#: methods counted under their own name; anything else is ``OTHER``
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Thread-safe request counters and latency sums."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count: dict[tuple[str, str, int], int] = defaultdict(int)
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        with self._lock:
            self.count[(method, route, status)] += 1
            self.seconds[(method, route)] += seconds

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP ser_adapt_requests_total HTTP requests by route and status.",
                     "# TYPE ser_adapt_requests_total counter"]
            lines += [f'ser_adapt_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}'
                      for (m, r, s), n in sorted(self.count.items())]
            lines += ["# HELP ser_adapt_request_seconds_sum Total time spent serving requests.",
                      "# TYPE ser_adapt_request_seconds_sum counter"]
            lines += [f'ser_adapt_request_seconds_sum{{method="{m}",route="{r}"}} {v:.6f}'
                      for (m, r), v in sorted(self.seconds.items())]
            lines += ["# TYPE ser_adapt_uptime_seconds gauge", f"ser_adapt_uptime_seconds {time.time() - self.started:.1f}"]
        return "\n".join(lines) + "\n"


def route_of(request) -> str:
    """The route template (``/v1/users/{user_id}``), never the concrete path: no user ids in metrics."""
    return getattr(request.scope.get("route"), "path", "unmatched")


async def observe_requests(request, call_next):
    """HTTP middleware: count every request in ``request.app.state.metrics`` (an exception counts as 500)."""
    metrics: Metrics = request.app.state.metrics
    t0 = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception:
        metrics.observe(request.method, route_of(request), 500, time.perf_counter() - t0)
        raise
    metrics.observe(request.method, route_of(request), response.status_code, time.perf_counter() - t0)
    return response
