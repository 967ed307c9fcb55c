"""Errors the database layer raises with a message fit for a CLI user (never a traceback)."""


class DatabaseError(RuntimeError):
    """Something about the database (server start, connection, schema, dataset) went wrong."""
