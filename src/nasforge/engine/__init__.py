"""The engine: what stands between the strategies and the executors and writes the run.

* :mod:`nasforge.engine.middleware`: what every evaluation goes through, whatever the executor
  (local process pool or Ray): the persistent cross-run evaluation cache.
"""

from nasforge.engine.middleware import evaluate_all

__all__ = ["evaluate_all"]
