"""Continual-learning strategies: Avalanche strategies and plugins behind one registry (``make_strategy``)."""
