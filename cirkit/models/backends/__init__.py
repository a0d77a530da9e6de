"""Backends turn ChatRequests into ChatResponses."""
