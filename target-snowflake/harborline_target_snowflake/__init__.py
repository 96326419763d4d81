"""Snowflake dialect for the Harborline warehouse loader."""
