"""What Locust processes import: the voice-agent caller, the exact-sample recorder and the locustfile."""
