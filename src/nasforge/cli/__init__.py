"""The ``nasforge`` command line."""
