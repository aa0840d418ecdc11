"""Test helpers: tiny synthetic problems (toys) and the strategy contract (contracts)."""
