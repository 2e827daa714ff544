"""Thin adapters that connect training frameworks to trainhub, one module per framework.

* :mod:`trainhub.integrations.ultralytics`: ``attach(model)`` / ``install()`` / ``python -m``.
* :mod:`trainhub.integrations.lightning`: ``HubCallback`` (a ``lightning.pytorch.Callback``).
* :mod:`trainhub.integrations.transformers`: ``HubCallback`` (a ``transformers.TrainerCallback``).

Any other loop uses :func:`trainhub.start` (:mod:`trainhub.client.run`).

This package imports no framework: each module checks for its framework when it is imported and
names the extra to install (``pip install 'trainhub[lightning]'``...) when it is missing.
"""
