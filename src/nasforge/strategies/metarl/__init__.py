"""Meta-reinforcement-learning NAS agents that own their loop (seed 001: ``meta_a2c``)."""

from nasforge.strategies.metarl.agent import MetaA2C, load_policy

__all__ = ["MetaA2C", "load_policy"]
