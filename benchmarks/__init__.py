"""The benchmark scripts that write ``benchmarks/results/<name>.md`` and BENCHMARKS.md.

Run each one as a module from the project folder: ``.venv/bin/python -m benchmarks.<name>``
(``backbones``, ``throughput``, ``foundation``, ``fewshot``, ``continual``, ``personalizer``,
``service``, ``finetune``; ``render`` rebuilds BENCHMARKS.md from the section files).
``benchmarks._common`` holds what they share: the provenance line, paths and corpus lists.
"""
