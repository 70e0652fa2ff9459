"""igw: the researcher's command line for the inference gateway (a client of its public API)."""

__version__ = "0.1.0"
