"""Framework-neutral lifecycle callbacks that report to a :class:`trainhub.HubSession`.

:mod:`trainhub.callbacks.hub` holds the Ultralytics-style callbacks (one argument: the trainer).
"""
