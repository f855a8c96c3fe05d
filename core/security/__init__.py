"""Request-safety checks that sit between clients and the network: the SSRF guard for custom hosts."""
