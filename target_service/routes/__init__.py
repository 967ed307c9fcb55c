"""HTTP routes: REST under /api/v1 and Vapi server tools under /api/vapi/tools."""
