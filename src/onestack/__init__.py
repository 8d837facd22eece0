"""onestack: a turnkey OpenStack system."""

__version__ = "0.1.0"
