"""Shared test helpers: ``ROOT`` (the project folder) and modules by area (``foundation``, ``personal``,
``continual``)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
