"""Fake notification providers: real HTTP servers that speak the Twilio and Google Calendar wire formats."""
