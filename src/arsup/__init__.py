"""arsup: the autoresearch supervisor."""

__version__ = "0.1.0"
