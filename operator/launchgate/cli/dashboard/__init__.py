"""`kubectl launchgate dashboard`: a local, read-only web page of the rollouts the user may see.

Needs the `dashboard` extra (`pip install 'launchgate[dashboard]'`): the web stack is imported only
when the command runs, so the rest of the CLI and the operator work without it.
"""
