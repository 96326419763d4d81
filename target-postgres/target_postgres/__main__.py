"""`python -m target_postgres` runs the target."""

from __future__ import annotations

from target_postgres.target import TargetPostgres

TargetPostgres.cli()
