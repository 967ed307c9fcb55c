"""Notification dispatch (the seed's Path B): the outbox the booking writes, delivered to SMS and calendar."""
