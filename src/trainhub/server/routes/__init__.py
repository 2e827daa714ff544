"""Routes: thin HTTP adapters that parse, validate and call a service.

``deps`` has the shared dependencies; one module per noun (models, metrics, checkpoints,
events, keys) plus ``pages`` for the server-rendered web pages.
"""
