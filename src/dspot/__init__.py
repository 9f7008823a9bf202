"""dspot: distributed-systems primitives over a simulated or TCP/TLS transport."""

__version__ = "0.1.0"
