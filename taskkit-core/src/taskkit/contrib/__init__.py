"""Integrations kept at their taskkit 0.2 import paths (thin forwarders)."""
