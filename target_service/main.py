"""Entry point for uvicorn's --factory: `uvicorn target_service.main:create_app --factory`."""

from target_service.app import create_app

__all__ = ["create_app"]
