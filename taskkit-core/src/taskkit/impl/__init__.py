"""The taskkit 0.2 import paths of the backends (``taskkit.impl.redis``, ``taskkit.impl.django``).

Each module forwards to the backend's own distribution and names it when it is missing.
"""
