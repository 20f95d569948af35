"""The operator CLI, ``ml-connector``: acts on a deployed stack or a running local stack."""
