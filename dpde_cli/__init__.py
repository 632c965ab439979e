"""dpde: detail-preserving monocular depth estimation (DPDE) from the command line."""

__version__ = "0.1.0"
