"""The reference clinic-booking service that bookbench measures (FastAPI + asyncpg)."""
