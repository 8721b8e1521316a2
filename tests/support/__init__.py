"""Test helpers (builders, phones, signed requests, fault proxies); fixtures live in the conftest files."""
