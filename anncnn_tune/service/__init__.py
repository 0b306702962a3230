"""What lasts between processes: storage URLs, the artifact store, checkpoints, locks, the dashboard."""
