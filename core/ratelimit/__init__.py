"""Rate limits per gateway key and per virtual key: requests and tokens per minute."""
