"""Pipeline steps and their method registries.

Normalisers, outlier treatments, imputers, weighting methods and aggregators, each a dict of
named, typed callables.
"""
