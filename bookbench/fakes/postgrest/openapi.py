"""The Swagger 2.0 document PostgREST serves at the API root: tables, their columns, and each function's arguments."""

from __future__ import annotations

from typing import Any

from bookbench.fakes.postgrest.filters import Table
from bookbench.fakes.postgrest.rpc import FUNCTIONS

_FORMATS = {"bigint": ("integer", "bigint"), "integer": ("integer", "integer"), "text": ("string", "text"),
            "date": ("string", "date"), "timestamp with time zone": ("string", "timestamp with time zone")}


def _property(type_name: str) -> dict[str, str]:
    kind, fmt = _FORMATS[type_name]
    return {"type": kind, "format": fmt}


def document(tables: list[Table], host: str) -> dict[str, Any]:
    paths: dict[str, Any] = {"/": {"get": {"tags": ["Introspection"], "summary": "OpenAPI description (this document)",
                                           "produces": ["application/openapi+json", "application/json"],
                                           "responses": {"200": {"description": "OK"}}}}}
    definitions: dict[str, Any] = {}
    for table in tables:
        definitions[table.name] = {"type": "object", "properties": {
            name: _property(col.type_name) for name, col in table.columns.items()}}
        filters = [{"$ref": f"#/parameters/rowFilter.{table.name}.{name}"} for name in table.columns]
        paths[f"/{table.name}"] = {"get": {
            "tags": [table.name],
            "parameters": [{"$ref": f"#/parameters/{p}"} for p in ("select", "order", "limit", "offset")] + filters,
            "responses": {"200": {"description": "OK", "schema": {
                "type": "array", "items": {"$ref": f"#/definitions/{table.name}"}}}}}}
    for function in FUNCTIONS.values():
        paths[f"/rpc/{function.name}"] = {"post": {
            "tags": ["(rpc) " + function.name],
            "description": f"returns {function.returns}",
            "produces": ["application/json", "application/vnd.pgrst.object+json"],
            "parameters": [{"in": "body", "name": "args", "required": True, "schema": {
                "type": "object", "required": list(function.params),
                "properties": {name: _property(t) for name, t in function.params.items()}}}],
            "responses": {"200": {"description": "OK"}, "204": {"description": "No Content"}}}}
    parameters: dict[str, Any] = {
        "select": {"name": "select", "in": "query", "type": "string", "description": "Filtering Columns"},
        "order": {"name": "order", "in": "query", "type": "string", "description": "Ordering"},
        "limit": {"name": "limit", "in": "query", "type": "string", "description": "Limiting and Pagination"},
        "offset": {"name": "offset", "in": "query", "type": "string", "description": "Limiting and Pagination"},
    }
    for table in tables:
        for name, col in table.columns.items():
            parameters[f"rowFilter.{table.name}.{name}"] = {"name": name, "in": "query", "type": "string",
                                                            "format": _FORMATS[col.type_name][1]}
    return {
        "swagger": "2.0",
        "info": {"title": "bookbench PostgREST-style booking API", "version": "12.2.0 (bookbench fake)"},
        "host": host,
        "basePath": "/rest/v1",
        "schemes": ["http"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "apikey": {"type": "apiKey", "in": "header", "name": "apikey"},
            "bearer": {"type": "apiKey", "in": "header", "name": "Authorization",
                       "description": "Bearer <access_token from POST /auth/v1/token?grant_type=password>"}},
        "security": [{"apikey": [], "bearer": []}],
        "paths": paths,
        "definitions": definitions,
        "parameters": parameters,
    }
