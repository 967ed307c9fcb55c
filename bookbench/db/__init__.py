"""Database side of bookbench: embedded server, schema, dataset generator and index sets."""
