"""Models: each is a registry entry (module here) plus a config in configs/."""
