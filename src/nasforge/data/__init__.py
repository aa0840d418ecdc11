"""Tasks (data sets split into train / validation / test) that load offline."""

from nasforge.data import builtin as _builtin  # noqa: F401  (registers the built-in tasks)
from nasforge.data import fewshot as _fewshot  # noqa: F401  (few-shot sets for MetaNAS)
from nasforge.data import gan_images as _gan_images  # noqa: F401  (GAN image tasks)
from nasforge.data import images as _images  # noqa: F401  (image tasks for the NAS envs)
from nasforge.data.base import TASKS, Split, Task, TaskFactory, make_task

__all__ = ["TASKS", "Split", "Task", "TaskFactory", "make_task"]
