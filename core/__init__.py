"""Skyrelay core: the cloud-neutral gateway library.

Handlers (``handlers/aws``, ``handlers/gcp``, ``handlers/azure``) build on this package; it never imports them.
"""

__version__ = "0.1.0"
