"""Thin adapters to outside services; each translates foreign errors into our own."""
