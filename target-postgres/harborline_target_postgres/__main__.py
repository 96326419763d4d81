"""`python -m harborline_target_postgres` runs the target."""

from __future__ import annotations

from harborline_target_postgres.target import TargetPostgres

TargetPostgres.cli()
