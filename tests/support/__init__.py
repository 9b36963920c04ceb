"""Helpers the tests share: builders, sample data, processes to drive and readers of
what they produce. Fixtures stay in the conftest.py files; test modules import
helpers from here and never from one another or from a conftest."""
