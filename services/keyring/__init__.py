"""Warden keys as agents hold them: their format and display prefix, shared by the console (which issues them) and
the ingress (which checks them). Hashing and encryption live in ``plumbing.keyring``."""
