"""Notification dispatch (the seed's Path B): the outbox the booking writes, delivered to SMS and calendar."""

# Sent with every delivering request (an SMS, an event insert or delete): the outbox row's dedup key, the same on
# every attempt. A receiver that honours it (bookbench's fake providers do) answers a repeat as the first time
# instead of delivering twice, which makes a redelivery harmless: after a dispatcher died between the provider's
# answer and settling the row, or a timeout that came after the provider had acted. Twilio ignores the header (an
# SMS redelivered there is sent twice); Google Calendar's client-chosen event id is its own guard (409 on a repeat).
# Defined here, not in providers.py, so that a receiver (the fakes) can name it without the dispatcher's HTTP client.
IDEMPOTENCY_HEADER = "Idempotency-Key"
