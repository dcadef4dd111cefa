"""The OCI runtime: config.json -> a validated :class:`~clonekit.runtime.plan.Plan` -> a container.

Modules: ``plan`` (the dataclasses), ``spec`` (config.json -> Plan, errors with JSON paths),
``defaults`` (the ``spec`` verb's config), ``features`` (the features document), ``state``
(state dir, locks), ``hooks``, ``container`` (create/start/kill/delete), ``init`` (the steps
inside the new namespaces, before the user's program).
"""
