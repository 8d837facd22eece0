"""The site as onestack finds it on this machine: its files, secrets, journal and facts.

Below ``engine`` and ``health``, which both read it; it never runs a plan.
"""
