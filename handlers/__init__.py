"""Cloud entries for the Skyrelay gateway: AWS Lambda and EKS, Cloud Run functions and GKE, Azure Functions.

Each package wires :mod:`core` to one cloud's runtime and defaults; core never imports a handler.
"""
