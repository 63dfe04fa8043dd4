"""Files as the job touches them: atomic replacement, locks, and one role per file."""
