"""Test helpers shared by the suites (processes, brokers, databases, stages); fixtures live in
the ``conftest.py`` files."""
