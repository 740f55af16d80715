"""The OpenAPI 3.1 description of API v1, served at /api/v1/."""

from __future__ import annotations

from typing import Any

from builds.planner import BUILDER, BUILDER_STRATEGY, DEFAULT_STRATEGY, STRATEGIES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "Invalid input; nothing was changed"),
    "401": _json(_ref("Error"), "Missing or invalid token"),
    "404": _json(_ref("Error"), "Not found, or not in one of your teams"),
}
ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]


def openapi_document(server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Crossport API", "version": "1"},
        "servers": [{"url": server_url.rstrip("/")}],
        "security": [{"bearer": []}],
        "paths": {
            "/projects": {
                "get": {
                    "summary": "Projects of your teams",
                    "responses": {"200": _json({"type": "object"}), **ERRORS},
                },
                "post": {
                    "summary": "Register a project",
                    "requestBody": {"content": {"application/json": {"schema": _ref("ProjectIn")}}},
                    "responses": {"201": _json(_ref("Project"), "Created"), **ERRORS},
                },
            },
            "/projects/{id}": {
                "get": {"parameters": ID, "responses": {"200": _json(_ref("Project")), **ERRORS}}
            },
            "/projects/{id}/dockerfile": {
                "get": {
                    "parameters": ID,
                    "summary": "The generated Dockerfile",
                    "responses": {"200": {"description": "text/plain Dockerfile"}, **ERRORS},
                }
            },
            "/projects/{id}/builds": {
                "post": {
                    "parameters": ID,
                    "summary": "Queue a build",
                    "requestBody": {"content": {"application/json": {"schema": _ref("BuildIn")}}},
                    "responses": {"201": _json(_ref("Build"), "Queued"), **ERRORS},
                }
            },
            "/builds/{id}": {
                "get": {"parameters": ID, "responses": {"200": _json(_ref("Build")), **ERRORS}}
            },
            "/builds/{id}/log": {
                "get": {
                    "parameters": ID
                    + [
                        {
                            "name": "after",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0},
                        }
                    ],
                    "responses": {"200": _json(_ref("Log")), **ERRORS},
                }
            },
            "/builds/{id}/cancel": {
                "post": {"parameters": ID, "responses": {"202": _json(_ref("Build")), **ERRORS}}
            },
            "/manifests": {
                "get": {
                    "parameters": [
                        {"name": "project", "in": "query", "schema": {"type": "integer"}}
                    ],
                    "summary": "The pushed-manifest ledger, newest first",
                    "responses": {"200": _json({"type": "object"}), **ERRORS},
                }
            },
            "/nodes": {
                "get": {
                    "summary": "Builder nodes with their health (staff)",
                    "responses": {"200": _json({"type": "object"}), **ERRORS},
                },
                "post": {
                    "summary": "Register a builder node (staff); checked before any connection",
                    "requestBody": {"content": {"application/json": {"schema": _ref("NodeIn")}}},
                    "responses": {"201": _json(_ref("Node"), "Created"), **ERRORS},
                },
            },
            "/nodes/{id}": {
                "get": {"parameters": ID, "responses": {"200": _json(_ref("Node")), **ERRORS}},
                "patch": {
                    "parameters": ID,
                    "summary": "Change a node (drain: enabled=false)",
                    "requestBody": {"content": {"application/json": {"schema": _ref("NodeIn")}}},
                    "responses": {"200": _json(_ref("Node")), **ERRORS},
                },
            },
            "/nodes/{id}/check": {
                "post": {
                    "parameters": ID,
                    "summary": "Check the node's health now",
                    "responses": {"200": _json(_ref("Node")), **ERRORS},
                }
            },
            "/nodes/{id}/emulators": {
                "post": {
                    "parameters": ID,
                    "summary": "Install QEMU emulators (binfmt) on the node, then re-check",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "platforms": {"type": "array", "items": {"type": "string"}}
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"200": _json({"type": "object"}), **ERRORS},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "fields": {"type": "object"}},
                },
                "ProjectIn": {
                    "type": "object",
                    "required": ["team", "name", "language", "git_url", "image", "platforms"],
                    "properties": {
                        "team": {"type": "string", "description": "team slug"},
                        "name": {"type": "string", "maxLength": 64},
                        "language": {"type": "string", "examples": ["go"]},
                        "git_url": {"type": "string", "description": "https://, ssh:// or file://"},
                        "ref": {"type": "string", "default": "main"},
                        "image": {"type": "string", "description": "repository without tag"},
                        "platforms": {"type": "array", "items": {"type": "string"}},
                        "options": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "Project": {"type": "object"},
                "BuildIn": {
                    "type": "object",
                    "properties": {
                        "ref": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "strategy": {
                            "type": "string",
                            "default": DEFAULT_STRATEGY,
                            "description": "; ".join(
                                f"{s.key}: {s.summary}" for s in (*STRATEGIES.values(), BUILDER)
                            ),
                            "anyOf": [
                                {"enum": list(STRATEGIES)},
                                {"pattern": f"^{BUILDER_STRATEGY.pattern}$"},
                            ],
                        },
                    },
                },
                "NodeIn": {
                    "type": "object",
                    "required": ["name", "endpoint"],
                    "properties": {
                        "name": {"type": "string"},
                        "endpoint": {
                            "type": "string",
                            "description": "unix:///path, ssh://user@host or tcp://host:port",
                        },
                        "tls": {
                            "type": "object",
                            "description": "PEM strings; required for tcp:// off loopback",
                            "properties": {
                                "ca": {"type": "string"},
                                "cert": {"type": "string"},
                                "key": {"type": "string"},
                            },
                        },
                        "max_builds": {"type": "integer", "minimum": 1, "maximum": 64},
                        "enabled": {"type": "boolean"},
                        "repair_emulators": {"type": "boolean"},
                    },
                },
                "Node": {"type": "object"},
                "Build": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "state": {
                            "enum": ["queued", "running", "succeeded", "failed", "cancelled"]
                        },
                        "reason": {"type": "string"},
                        "strategy": {"type": "string"},
                        "plan": {"type": "object"},
                        "platforms": {
                            "type": "object",
                            "description": "per platform: state, node, method, seconds, digest",
                        },
                        "manifest": {
                            "type": ["object", "null"],
                            "properties": {
                                "tag": {"type": "string"},
                                "digest": {"type": "string"},
                                "platforms": {"type": "object"},
                            },
                        },
                    },
                },
                "Log": {
                    "type": "object",
                    "properties": {
                        "lines": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "seq": {"type": "integer"},
                                    "platform": {"type": ["string", "null"]},
                                    "text": {"type": "string"},
                                },
                            },
                        },
                        "next": {"type": "integer"},
                    },
                },
            },
        },
    }
