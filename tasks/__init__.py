"""Built-in AudioSAEBench metric tasks (installed as ``audiosaebench_tasks``).

Each task is a folder: ``__init__.py`` holds the metadata record and a ``run`` that imports the
heavy code lazily; ``README.md`` states the formula and every hyper-parameter.
"""
