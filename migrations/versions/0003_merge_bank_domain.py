"""one head again after the parallel 0002 revisions (the active-agreement index and the status checks)

Revision ID: 0003
Revises: 0002_bank, 0002_domain
"""

from __future__ import annotations

revision = "0003"
down_revision = ("0002_bank", "0002_domain")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: this revision only joins the two branches."""


def downgrade() -> None:
    """Nothing to undo."""
