"""Capacity providers: on-prem inventory, private pools and public clouds (SkyPilot catalogs)."""
