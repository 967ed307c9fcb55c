"""The only code that reads and writes run-folder files: versioned models for each artifact."""
