"""Package discovery: audiosaebench/* as it is, and tasks/* shipped as ``audiosaebench_tasks`` (a top-level
module called ``tasks`` would collide with other projects). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

tasks = ["audiosaebench_tasks"] + [f"audiosaebench_tasks.{p}" for p in find_packages("tasks")]
setup(packages=find_packages(include=["audiosaebench", "audiosaebench.*"]) + tasks,
      package_dir={"audiosaebench_tasks": "tasks"})
