"""Pre-deployment checks against a running booking service: stress, smoke, uat, preflight, audit."""
