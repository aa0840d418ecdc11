"""REINFORCE controllers (seeds 002 and 003): an autoregressive RNN policy over any space's
decision view, with the ``default``, ``reference_002`` and ``reference_003`` presets."""

from nasforge.strategies.reinforce.controller import Controller, NetworkManager, Reinforce

__all__ = ["Controller", "NetworkManager", "Reinforce"]
