"""Thin adapters that connect training frameworks to trainhub, one module per framework.

* :mod:`trainhub.integrations.ultralytics`: ``attach(model)`` / ``install()`` / ``python -m``.

This package imports no framework: each module checks for its framework when it is imported and
names the extra to install (``pip install 'trainhub[ultralytics]'``) when it is missing.
"""
