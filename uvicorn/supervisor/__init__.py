"""Processes only: binding listeners, and (later) the pre-fork master. Never imports the
protocol cores or the worker."""
